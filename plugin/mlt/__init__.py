"""MLT XML for Kdenlive, Shotcut and `melt`: `write_mlt(timeline_or_otio_path, out_path)`."""

from plugin.mlt.writer import MediaFacts, probe_media, timeline_to_mlt, write_mlt

__all__ = ["MediaFacts", "probe_media", "timeline_to_mlt", "write_mlt"]
