"""All of Doppel's PyAV code: probe, frame index, exact-range decode, encode, audio, timecode, colour.

Frame identity is an integer frame index (0-based, presentation order) into the pts index
that `probe` builds by demuxing packets: the frames FFmpeg presents, after the MP4/MOV edit
list (packets it marks discard are no frames) and without the head of a file that starts
mid-GOP (decoded to see what the decoder drops). Times are pts in a stream's time base,
never float seconds.

Convention for pictures handed in and out: RGB uint8 (H, W, 3), 0..255, converted with the
source's matrix and range (untagged HD -> BT.709, untagged SD -> BT.601, untagged YUV -> limited
range), and the same conversion on the way back, so an untouched pixel keeps its colour.

Untouched frames should not go through RGB at all: `read_av_frames` + `VideoWriter.write_av`
hand decoded frames straight to the encoder (PITFALLS: a full-frame rgb round trip costs
about half an encode). `trim` works that way.

The package is split by job, and every name is importable from `renderer.media`:

    info.py     MediaInfo, probe (pts index by demuxing, edit lists), colour tags, timecode, field order
    decode.py   read_frames / read_av_frames (exact ranges), frame_to_rgb, patch_frame, patch_regions,
                round_trip_rgb (a face's way into a coded format and back),
                is_deep / read_box (float32 face boxes of 10/12/16-bit and float sources)
    encode.py   codec profiles, VideoWriter (atomic; colour, timecode, audio carried), trim
    audio.py    AudioCarry: a source's first audio stream over a frame range, re-encoded sample-exact
    splice.py   concat (farm chunks) and smart-render splicing of re-encoded GOPs
    sequence.py image sequences (EXR, DPX, TIFF, PNG): patterns, probe, per-file decode, frame-list hashes
    sequence_write.py  SequenceWriter (atomic, one folder per sequence; EXR through openexr), join_sequences
    exr_header.py  relabel_exr: an EXR frame's label attributes rewritten, its compressed chunks copied as is
    matte.py    MatteWriter: the matte pass (blend mask, face plate) as ProRes 4444 clips with alpha
    matte_sequence.py  SequenceMatteWriter: the matte pass of a sequence render as sequences beside it
    holdout.py  hold-out mattes (alpha or grey clips per shot, an occlusion input): checked against the shot,
                decoded beside it
"""

from renderer.errors import InputError, MediaError  # noqa: F401  (re-exported for callers)
from renderer.media.decode import (  # noqa: F401
    DEEP_RGB,
    PATCH_MARGIN,
    RegionRGB,
    frame_to_rgb,
    is_deep,
    iter_packets,
    patch_frame,
    patch_regions,
    pix_fmt_depth,
    read_av_frames,
    read_box,
    read_frames,
    round_trip_rgb,
)
from renderer.media.encode import (  # noqa: F401
    CODECS,
    CodecProfile,
    VideoWriter,
    check_output,
    open_writer,
    output_color,
    resolve_codec,
    trim,
)
from renderer.media.info import (  # noqa: F401
    AudioInfo,
    ColorTags,
    FIELD_ORDERS,
    CorruptMediaError,
    HdrMetadata,
    MediaInfo,
    VideoStreamInfo,
    effective_color,
    frame_to_timecode,
    probe,
    shift_timecode,
    timecode_to_frame,
)
from renderer.media.matte import (  # noqa: F401
    MATTE_SUFFIX,
    PLATE_SUFFIX,
    MatteWriter,
    decode_matte,
    matte_paths,
    open_matte_writer,
)
from renderer.media.sequence import (  # noqa: F401
    SEQUENCE_KINDS,
    SequenceInfo,
    SequencePattern,
    frame_list,
    is_sequence_path,
    parse_sequence,
    probe_sequence,
    sequence_fingerprint,
    sequence_sha256,
)
from renderer.media.sequence_write import SequenceWriter, replace_sequence_folder  # noqa: F401
from renderer.media.splice import (  # noqa: F401
    SMART_CODECS,
    CutPoints,
    SpliceError,
    SpliceResult,
    concat,
    cut_points,
    gop_spans,
    splice,
)
from renderer.media.holdout import check_matte, matte_to_array, read_matte  # noqa: F401
