"""Stream copy: concatenating farm chunks and splicing re-encoded spans into untouched GOPs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error

from renderer.atomic import atomic_output
from renderer.errors import InputError, MediaError
from renderer.media.decode import iter_packets
from renderer.media.audio import AudioCarry
from renderer.media.info import MediaInfo, _open_input, _shift_wrapping, _video_stream, probe

# --------------------------------------------------------------------------------------------
# Concatenation (render-farm chunks)


def concat(parts: list[Path], out: Path | str, *, time_base: Fraction, offsets: list[int],
           fps: Fraction, timecode: str | None = None, metadata: dict[str, str] | None = None,
           audio_from: tuple[Path, int, int] | None = None) -> MediaInfo:
    """Join the video of encoded `parts` into `out` packet by packet (no re-encode); return `probe(out)`.

    Every part must be the same codec, size and pixel format, each starting on a keyframe of
    a closed GOP (intra codecs, or h264 encoded with a forced GOP), as farm chunks are. Part
    k's timestamps are moved to start at `offsets[k]` in `time_base` (the writer's time base:
    1/fps, or the source's for VFR), so the output carries exactly the timing an unchunked
    encode of the same frames would; `fps` is the nominal rate (the timecode track needs it). `audio_from` = (source, first, last) encodes the source's
    audio over that frame range beside the copied video, as `VideoWriter` does (chunks carry
    no audio: separately encoded AAC does not join without gaps). Written under a temporary
    name, renamed when complete; MediaError names the part that does not fit.
    """
    out = Path(out)
    if not parts or len(parts) != len(offsets):
        raise InputError(f"concat needs one offset per part; got {len(parts)} part(s), {len(offsets)} offset(s)")
    fmt = {".mxf": "mxf", ".mkv": "matroska", ".mov": "mov", ".mp4": "mp4"}.get(out.suffix.lower())
    if fmt is None:
        raise InputError(f"output {out} has suffix {out.suffix or '(none)'!r} (allowed: .mov, .mp4, .mkv, .mxf)")
    tb = Fraction(time_base)
    audio: AudioCarry | None = None
    try:
        with atomic_output(out) as tmp, av.open(str(tmp), "w", format=fmt) as container:
            for key, value in (metadata or {}).items():
                container.metadata[key] = value
            if timecode:
                container.metadata["timecode"] = timecode
            stream: Any = None
            shape: tuple[str, int, int, str] | None = None
            last_dts: int | None = None
            for part, offset in zip(parts, offsets):
                with _open_input(Path(part)) as src:
                    video = _video_stream(src, Path(part))
                    here = (video.codec_context.name, video.codec_context.width, video.codec_context.height,
                            video.codec_context.format.name if video.codec_context.format else "")
                    if stream is None:
                        shape = here
                        stream = container.add_stream_from_template(video)
                        stream.time_base = tb
                        stream.codec_context.framerate = Fraction(fps)
                        if timecode:
                            stream.metadata["timecode"] = timecode
                        if audio_from is not None:
                            audio = AudioCarry(container, Path(audio_from[0]), int(audio_from[1]),
                                                int(audio_from[2]), out.suffix.lower())
                    elif here != shape:
                        raise MediaError(f"cannot join {part}: it is {here}, the first part is {shape} "
                                         f"(codec, width, height, pixel format must match)")
                    in_tb = Fraction(video.time_base)
                    first = True
                    for packet in src.demux(video):
                        if packet.size == 0:
                            continue
                        if first and not packet.is_keyframe:
                            raise MediaError(f"cannot join {part}: it does not start on a keyframe")
                        first = False
                        # Rescale to the writer's time base (exact: chunk pts are whole ticks of it), then shift.
                        pts = None if packet.pts is None else round(packet.pts * in_tb / tb) + offset
                        dts = None if packet.dts is None else round(packet.dts * in_tb / tb) + offset
                        if dts is not None and last_dts is not None and dts <= last_dts:
                            raise MediaError(f"cannot join {part}: its timestamps overlap the part before "
                                             f"(dts {dts} after {last_dts} in {tb})")
                        last_dts = dts if dts is not None else last_dts
                        duration = round(packet.duration * in_tb / tb) if packet.duration else 0
                        packet.pts, packet.dts, packet.duration = pts, dts, duration
                        packet.time_base = tb
                        packet.stream = stream
                        container.mux(packet)
                        if audio is not None and pts is not None:
                            audio.pump_until((pts - offsets[0] + max(duration, 1)) * tb)
            if audio is not None:
                audio.finish()
    except av.error.FFmpegError as err:
        raise MediaError(f"joining {len(parts)} part(s) into {out} failed: {err}") from err
    finally:
        if audio is not None:
            audio.close()
    return probe(out)


# --------------------------------------------------------------------------------------------
# Smart render: stream-copy untouched GOPs, splice re-encoded spans in

SMART_CODECS = ("h264", "prores", "dnxhd", "ffv1")  # codecs Doppel re-encodes to splice back in
_IDR_NAL, _SPS_NAL, _PPS_NAL = 5, 7, 8


class SpliceError(MediaError):
    """A re-encoded span does not fit the source's stream (the caller re-encodes everything instead)."""


@dataclass(frozen=True)
class CutPoints:
    """Where a video stream can be cut for stream copy, by frame index.

    `cuts` holds every frame c where the packets before c in decode order are exactly frames
    0..c-1 and frame c opens a closed GOP (h264: an IDR access unit; intra codecs: every
    frame), plus 0 and `frames`. Packets can be swapped between two cuts without any other
    packet referencing them. `reason` says why smart render is impossible (None: possible).
    `forced` are the GOPs that hold packets the edit list hides or the decoder drops: a
    stream copy would carry them without the edit list that hides them, so they are always
    re-encoded (`gop_spans` adds them).
    """

    cuts: tuple[int, ...]
    frames: int
    reason: str | None = None
    forced: tuple[tuple[int, int], ...] = ()  # GOPs (inclusive) holding packets that are no frame: always re-encoded


@dataclass(frozen=True)
class SpliceResult:
    """What `splice` wrote: frames stream-copied from the source and frames taken from spans.

    `parameter_sets_at`: source frames whose copied packet got the source's SPS/PPS prepended
    in-band (h264: the first copied keyframe after a re-encoded span); its bytes are otherwise
    the source packet's."""

    copied: int
    encoded: int
    parameter_sets_at: tuple[int, ...]
    info: MediaInfo


def _avcc(extradata: bytes | None) -> tuple[int, list[bytes]] | None:
    """(NAL length size, [SPS..., PPS...]) of an avcC record; None when not avcC (Annex B)."""
    if not extradata or len(extradata) < 7 or extradata[0] != 1:
        return None
    length_size = (extradata[4] & 3) + 1
    nals: list[bytes] = []
    pos = 5
    for count_mask in (0x1F, 0xFF):
        count = extradata[pos] & count_mask
        pos += 1
        for _ in range(count):
            n = int.from_bytes(extradata[pos:pos + 2], "big")
            nals.append(bytes(extradata[pos + 2:pos + 2 + n]))
            pos += 2 + n
    return length_size, nals


def _nal_types(data: bytes, length_size: int) -> list[int]:
    """NAL unit types of one length-prefixed (avcC) h264 access unit."""
    types, pos = [], 0
    while pos + length_size <= len(data):
        n = int.from_bytes(data[pos:pos + length_size], "big")
        if pos + length_size < len(data):
            types.append(data[pos + length_size] & 0x1F)
        pos += length_size + n
    return types


def _length_prefixed(nals: list[bytes], length_size: int) -> bytes:
    return b"".join(len(n).to_bytes(length_size, "big") + n for n in nals)


def cut_points(info: MediaInfo) -> CutPoints:
    """Find where `info`'s video can be cut for stream copy (demuxes packets, no decode).

    Open GOPs (leading B-frames that reference the GOP before), non-IDR h264 keyframes and
    Annex B h264 give no cut; a source Doppel cannot encode, or a damaged one, gives a reason.
    """
    whole = (0, info.frames)
    if info.codec not in SMART_CODECS:
        return CutPoints(whole, info.frames,
                         f"source codec {info.codec} is not one Doppel encodes (smart render: {', '.join(SMART_CODECS)})")
    if info.truncated:
        return CutPoints(whole, info.frames, "the source is truncated")
    length_size = 4
    with _open_input(info.path) as container:
        video = container.streams[info.video_index]
        if info.codec == "h264":
            avcc = _avcc(video.codec_context.extradata)
            if avcc is None:
                return CutPoints(whole, info.frames, "h264 without avcC parameter sets (Annex B stream)")
            length_size = avcc[0]
    cuts, hidden_in = [0], set()  # hidden_in: cuts whose GOP holds a packet that is no frame
    open_at: list[int] = []  # keyframes that open a GOP which is not closed
    seen_max, n = -1, 0
    for index, packet in iter_packets(info.path, info):
        if packet.pts is None:
            return CutPoints(whole, info.frames, "a video packet without a timestamp")
        if index is None:
            hidden_in.add(cuts[-1])
            continue
        if n > 0 and packet.is_keyframe:
            closed = info.codec != "h264" or _IDR_NAL in _nal_types(bytes(packet), length_size)
            if seen_max == n - 1 and closed and index == n:
                cuts.append(n)
            elif seen_max == n - 1:
                open_at.append(index)  # leading pictures follow it, or a non-IDR I-frame
        seen_max = max(seen_max, index)
        n += 1
    if n != info.frames:
        return CutPoints(whole, info.frames, f"demuxed {n} video packets for {info.frames} frames")
    cuts.append(info.frames)
    forced = tuple((c, nxt - 1) for c, nxt in zip(cuts, cuts[1:]) if c in hidden_in)
    reason = None
    if len(cuts) == 2 and open_at:
        shown = ", ".join(str(i) for i in open_at[:5]) + (", ..." if len(open_at) > 5 else "")
        reason = (f"open GOP: the keyframes at frames {shown} are not IDR or have leading B-frames that reference "
                  f"the GOP before, so no GOP can be cut for stream copy")
    return CutPoints(tuple(sorted(set(cuts))), info.frames, reason, forced)


def gop_spans(cuts: CutPoints, ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Inclusive frame spans to re-encode so that every frame of `ranges` (inclusive) is inside one.

    Each range grows to the cut at or before its first frame and to just before the cut
    after its last frame; the `forced` GOPs are added; overlapping or touching spans merge.
    Sorted."""
    for lo, hi in ranges:
        if not 0 <= lo <= hi < cuts.frames:
            raise InputError(f"swap range {lo}-{hi} is outside the video (allowed: 0-{cuts.frames - 1})")
    spans: list[tuple[int, int]] = []
    for lo, hi in sorted(list(ranges) + list(cuts.forced)):
        g0 = max(c for c in cuts.cuts if c <= lo)
        g1 = min(c for c in cuts.cuts if c > hi) - 1
        if spans and g0 <= spans[-1][1] + 1:
            spans[-1] = (spans[-1][0], max(spans[-1][1], g1))
        else:
            spans.append((g0, g1))
    return spans


def _check_span(info: MediaInfo, src_video: Any, g0: int, g1: int, part: Path) -> MediaInfo:
    """SpliceError unless `part` codes frames g0..g1 the way the source stream does."""
    p = probe(part)
    problems = []
    if p.frames != g1 - g0 + 1:
        problems.append(f"{p.frames} frames for span {g0}-{g1}")
    for what, mine, theirs in (("codec", p.codec, info.codec), ("size", (p.width, p.height), (info.width, info.height)),
                               ("pixel format", p.pix_fmt, info.pix_fmt)):
        if mine != theirs:
            problems.append(f"{what} {mine} (source: {theirs})")
    if p.keyframes[:1] != (0,):
        problems.append("it does not start on a keyframe")
    with _open_input(part) as container:
        cc, sc = container.streams.video[0].codec_context, src_video.codec_context
        if info.codec == "h264":
            mine_avcc, src_avcc = _avcc(cc.extradata), _avcc(sc.extradata)
            if mine_avcc is None or src_avcc is None or mine_avcc[0] != src_avcc[0]:
                problems.append("its NAL length size differs from the source's")
        elif info.codec == "ffv1" and bytes(cc.extradata or b"") != bytes(sc.extradata or b""):
            problems.append("its FFV1 configuration record differs from the source's (version, slices, coder)")
        elif info.codec in ("prores", "dnxhd") and (cc.codec_tag, cc.profile) != (sc.codec_tag, sc.profile):
            problems.append(f"profile {cc.codec_tag} {cc.profile} (source: {sc.codec_tag} {sc.profile})")
    if problems:
        raise SpliceError(f"re-encoded span {g0}-{g1} ({part.name}) does not fit the source: {'; '.join(problems)}")
    return p


def splice(src: Path | str, out: Path | str, parts: list[tuple[int, int, Path]], *, info: MediaInfo | None = None,
           metadata: dict[str, str] | None = None, progress: Callable[[int], None] | None = None) -> SpliceResult:
    """Write `out`: the source's video packets stream-copied, except frames g0..g1 of each
    (g0, g1, part) taken from `part` (a re-encode of exactly those frames, same codec).

    Spans must lie between `cut_points`; each part's timestamps are moved onto the source's
    frames (pts of output frame i == source pts of frame i), and decode timestamps are
    re-derived for the whole stream so they stay monotonic across spans whose B-frame delay
    differs. h264 parameter sets travel in-band: each part's first packet carries its own
    SPS/PPS and the first copied keyframe after a part the source's (the avcC record stays
    the source's). Audio packets are copied as they are; timecode, colour tags, rotation and
    `metadata` (container tags, e.g. the synthetic-media label) are kept. Written under a
    temporary name and renamed when complete. Raises SpliceError when a part does not fit.
    `progress(frames_done)` is called as frames are written.
    """
    src, out = Path(src), Path(out)
    info = info or probe(src)
    parts = sorted(parts)
    fmt = {".mxf": "mxf", ".mkv": "matroska", ".mov": "mov", ".mp4": "mp4"}.get(out.suffix.lower())
    if fmt is None:
        raise InputError(f"output {out} has suffix {out.suffix or '(none)'!r} (allowed: .mov, .mp4, .mkv, .mxf)")
    if out.resolve() == src.resolve():
        raise InputError(f"output {out} is the source itself; the source is never written")
    span_of: dict[int, int] = {}
    for k, (g0, g1, _) in enumerate(parts):
        for i in range(g0, g1 + 1):
            if i in span_of:
                raise InputError(f"spans overlap at frame {i}")
            span_of[i] = k
    index_of = {p: i for i, p in enumerate(info.pts)}
    with _open_input(src) as container:
        src_video = container.streams[info.video_index]
        part_infos = [_check_span(info, src_video, g0, g1, Path(p)) for g0, g1, p in parts]
        src_avcc = _avcc(src_video.codec_context.extradata) if info.codec == "h264" else None
        # Decode order of the output, as frame indices, to derive its decode timestamps.
        order: list[int] = []
        part_orders: list[list[int]] = []
        for (g0, _, p), pinfo in zip(parts, part_infos):
            p_index = {q: i for i, q in enumerate(pinfo.pts)}
            part_orders.append([g0 + p_index[pk.pts] for pk in _video_packets(Path(p))])
        emitted: set[int] = set()
        hidden_open = False  # a packet that is no frame, not yet known to lie inside a span
        last_in_span = False
        for packet in container.demux(src_video):
            if packet.size == 0:
                continue
            i = None if packet.is_discard else index_of.get(packet.pts)
            if i is None:
                hidden_open = hidden_open or not last_in_span
                continue
            k = span_of.get(i)
            if hidden_open and k is None:
                break
            hidden_open, last_in_span = False, k is not None
            if k is None:
                order.append(i)
            elif k not in emitted:
                emitted.add(k)
                order.extend(part_orders[k])
    if hidden_open:
        raise SpliceError(f"{src.name} has packets that its edit list hides or that do not decode outside the "
                          f"re-encoded spans (copying them would show them); re-encode their GOPs (cut_points.forced)")
    if sorted(order) != list(range(info.frames)):
        raise SpliceError(f"spliced stream of {src.name} would not hold every frame exactly once")
    delay = max(n - i for n, i in enumerate(order))
    step = round(1 / info.fps / info.time_base) or 1

    def dts_at(n: int) -> int:
        j = n - delay
        return info.pts[j] if j >= 0 else info.pts[0] + j * step

    def duration_of(i: int) -> int:
        return (info.pts[i + 1] - info.pts[i]) if i + 1 < info.frames else step

    copied = encoded = 0
    param_at: list[int] = []
    try:
        with _open_input(src) as container, atomic_output(out) as tmp, av.open(str(tmp), "w", format=fmt) as dst:
            src_video = container.streams[info.video_index]
            for key, value in (metadata or {}).items():
                dst.metadata[key] = value
            timecode = info.timecode
            if timecode and fmt in ("mov", "mp4"):
                # The muxer's tmcd track starts at movie time 0, and the copied video at its first pts
                # (an empty edit when that is later): name the timecode at 0, so frame 0 keeps its own.
                timecode = _shift_wrapping(timecode, -int(round(info.frame_time(0) * info.fps)), info.fps)
            if timecode:
                dst.metadata["timecode"] = timecode
            vout = dst.add_stream_from_template(src_video)
            vout.time_base = info.time_base
            vout.codec_context.framerate = info.fps  # mov writes its timecode track only with a rate
            if timecode:
                vout.metadata["timecode"] = timecode
            if info.rotation:
                vout.set_display_rotation(info.rotation)
            audio_map = {}
            for a in container.streams.audio:
                try:
                    audio_map[a.index] = dst.add_stream_from_template(a)
                except (av.error.FFmpegError, ValueError) as err:
                    raise SpliceError(f"audio stream {a.index} ({a.codec_context.name}) cannot be copied into "
                                      f"{out.suffix}: {err}") from err
            n = 0
            emitted = set()
            needs_src_params = False

            def mux_video(packet: av.Packet, i: int) -> None:
                nonlocal n
                packet.pts, packet.dts, packet.duration = info.pts[i], dts_at(n), duration_of(i)
                packet.time_base = info.time_base
                packet.stream = vout
                dst.mux(packet)
                n += 1
                if progress is not None:
                    progress(n)

            for packet in container.demux(src_video, *container.streams.audio):
                if packet.size == 0:
                    continue
                if packet.stream.type == "audio":
                    packet.stream = audio_map[packet.stream_index]
                    dst.mux(packet)
                    continue
                i = None if packet.is_discard else index_of.get(packet.pts)
                if i is None:
                    continue  # no frame: it lies in a re-encoded span (checked above)
                k = span_of.get(i)
                if k is None:
                    if needs_src_params and src_avcc is not None:
                        if _SPS_NAL not in _nal_types(bytes(packet), src_avcc[0]):
                            data = _length_prefixed(src_avcc[1], src_avcc[0]) + bytes(packet)
                            packet = _packet_like(packet, data)
                            param_at.append(i)
                    needs_src_params = False
                    mux_video(packet, i)
                    copied += 1
                    continue
                if k in emitted:
                    continue
                emitted.add(k)
                g0, _, part = parts[k]
                p_index = {q: j for j, q in enumerate(part_infos[k].pts)}
                with _open_input(Path(part)) as pc:
                    pv = pc.streams.video[0]
                    p_avcc = _avcc(pv.codec_context.extradata) if info.codec == "h264" else None
                    first = True
                    for pp in pc.demux(pv):
                        if pp.size == 0:
                            continue
                        if first and p_avcc is not None and _SPS_NAL not in _nal_types(bytes(pp), p_avcc[0]):
                            pp = _packet_like(pp, _length_prefixed(p_avcc[1], p_avcc[0]) + bytes(pp))
                        first = False
                        mux_video(pp, g0 + p_index[pp.pts])
                        encoded += 1
                needs_src_params = True
    except av.error.FFmpegError as err:
        raise MediaError(f"splicing {len(parts)} span(s) into {src.name} -> {out} failed: {err}") from err
    return SpliceResult(copied=copied, encoded=encoded, parameter_sets_at=tuple(param_at), info=probe(out))


def _video_packets(path: Path) -> Iterator[av.Packet]:
    """The first video stream's packets of `path`, in decode order (empty flush packets skipped)."""
    with _open_input(path) as container:
        for packet in container.demux(container.streams.video[0]):
            if packet.size:
                yield packet


def _packet_like(packet: av.Packet, data: bytes) -> av.Packet:
    """A new packet holding `data`, with `packet`'s timing and keyframe flag."""
    new = av.Packet(data)
    new.pts, new.dts, new.duration, new.time_base = packet.pts, packet.dts, packet.duration, packet.time_base
    new.is_keyframe = packet.is_keyframe
    return new
