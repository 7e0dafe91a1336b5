"""The preset schema: every key once (`FIELDS`: dotted path -> type, allowed values, default, help),
the groups they nest in, the marker aliases, and the codec/container/pixel-format/audio pairs
the loader checks. `renderer.presets` validates files against it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

@dataclass(frozen=True)
class Field:
    """One preset key: its kind, allowed values or bounds, default and help."""

    kind: str  # "enum" | "int" | "float" | "bool" | "str" | "path"
    default: Any
    allowed: tuple[Any, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    nullable: bool = False
    help: str = ""

    def describe(self) -> str:
        """What is allowed, for error messages: "one of a, b", "an integer >= 0"..."""
        if self.kind == "enum":
            text = "one of " + ", ".join(str(a) for a in self.allowed)
        elif self.kind in ("int", "float"):
            noun = "an integer" if self.kind == "int" else "a number"
            bounds = []
            if self.minimum is not None:
                bounds.append(f">= {self.minimum:g}")
            if self.maximum is not None:
                bounds.append(f"<= {self.maximum:g}")
            text = noun + (" " + " and ".join(bounds) if bounds else "")
        elif self.kind == "bool":
            text = "true or false"
        elif self.kind == "path":
            text = "a file or directory path"
        else:
            text = "a string"
        return text + (" or null" if self.nullable else "")


CODECS = ("h264", "h265", "prores_hq", "prores_4444", "prores_xq", "dnxhr_hq", "dnxhr_hqx", "dnxhr_444", "ffv1")
CONTAINERS = ("mp4", "mov", "mxf", "mkv")
# codec -> containers it may go in (checked; MXF only takes the broadcast codecs).
CODEC_CONTAINERS: dict[str, tuple[str, ...]] = {
    "h264": ("mp4", "mov", "mkv"),
    "h265": ("mp4", "mov", "mkv"),
    "prores_hq": ("mov", "mkv"),
    "prores_4444": ("mov", "mkv"),
    "prores_xq": ("mov", "mkv"),
    "dnxhr_hq": ("mxf", "mov", "mkv"),
    "dnxhr_hqx": ("mxf", "mov", "mkv"),
    "dnxhr_444": ("mxf", "mov", "mkv"),
    "ffv1": ("mkv",),
}
# codec -> pixel formats its encoder takes (the first is the default); renderer.media.CODECS
# holds the encoder's whole list (a test checks these are among them).
CODEC_PIX_FMTS: dict[str, tuple[str, ...]] = {
    "h264": ("yuv420p", "yuv422p", "yuv444p", "yuv420p10le"),
    "h265": ("yuv420p10le", "yuv420p", "yuv422p10le", "yuv444p10le", "yuv420p12le", "yuv422p12le", "yuv444p12le"),
    "prores_hq": ("yuv422p10le",),
    "prores_4444": ("yuva444p10le", "yuv444p10le"),
    "prores_xq": ("yuv444p10le", "yuva444p10le"),
    "dnxhr_hq": ("yuv422p",),
    "dnxhr_hqx": ("yuv422p10le",),
    "dnxhr_444": ("yuv444p10le", "gbrp10le"),
    "ffv1": ("yuv420p", "yuv422p10le", "yuv444p10le", "yuv444p", "gbrp10le", "yuv422p12le", "yuv444p12le",
             "yuv444p16le", "gbrp12le", "gbrp16le"),
}
PIX_FMT_SOURCE = "source"  # output.pix_fmt: the source's own layout and depth (nearest the codec takes)
# container -> audio it can carry (MXF + AAC is refused by the muxer: PCM only).
CONTAINER_AUDIO: dict[str, tuple[str, ...]] = {
    "mp4": ("aac", "none"),
    "mov": ("pcm", "aac", "none"),
    "mxf": ("pcm", "none"),
    "mkv": ("pcm", "aac", "none"),
}
NAME_FIELDS = ("clip", "start", "end", "track", "index", "preset", "source")

FIELDS: dict[str, Field] = {
    "description": Field("str", "", help="free text shown by `doppel presets list`"),
    "model": Field("path", None, nullable=True, help="trained model directory (or a name the render resolves)"),
    "detector": Field("enum", "hog", ("hog", "mtcnn"), help="face detector"),
    "landmarks": Field("enum", 68, (68, 5), help="landmark model: 68 or 5 points"),
    "faces": Field("enum", "all", ("all", "largest", "identity"), help="which faces in a frame to swap"),
    "identity": Field("path", None, nullable=True, help="reference image/faceset when faces=identity"),
    "direction": Field("enum", "a2b", ("a2b", "b2a"), help="a2b: person A's face becomes B"),
    "mask.kind": Field("enum", "hull", ("hull", "ellipse", "learned", "hull+learned"), help="swap mask"),
    "mask.erode": Field("float", 0.02, minimum=0.0, maximum=0.5, help="mask erosion, fraction of face size"),
    "mask.feather": Field("float", 0.05, minimum=0.0, maximum=0.5, help="mask feather, fraction of face size"),
    "mask.forehead": Field("float", 0.0, minimum=0.0, maximum=0.5,
                           help="hull mask: brows raised by this fraction of the chin-to-brow distance, so the swap "
                                "takes in the forehead (0: at the brows; the model learns up to ~0.12)"),
    "occlusion": Field("enum", "auto", ("auto", "learned", "reconstruction", "matte", "off"),
                       help="what stands in front of the face stays there: auto (learned when the model has an "
                            "occluder segmenter, else reconstruction), reconstruction (A->A rebuild "
                            "disagrees), learned (the model's occluder segmenter, `doppel train-segmenter`), matte (hold-out matte "
                            "only), off"),
    "occlusion_prior": Field("enum", "auto", ("auto", "off"),
                             help="reconstruction: auto divides the rebuild error by the model's expected-error "
                                  "prior (`doppel error-prior`; eyes and mouth need more disagreement) when the "
                                  "model has one; off ignores it"),
    "occlusion_matte": Field("path", None, nullable=True,
                             help="hold-out matte clip for the shot (alpha or grey, one frame per source frame, "
                                  "same size); always respected, whatever `occlusion` says"),
    "colour": Field("enum", "rct", ("none", "mean", "rct", "histogram"), help="colour transfer to the target"),
    "blend": Field("enum", "alpha", ("alpha", "poisson"), help="paste-back blending"),
    "grain": Field("enum", "match", ("off", "match"),
                   help="match: add the source's grain (measured around the face) inside it (bench/results/quality.md)"),
    "detail": Field("float", 0.0, minimum=0.0, maximum=2.0, help="unsharp-mask strength on the swapped face (0: off)"),
    "upscale": Field("enum", "auto", ("auto", "on", "off"),
                     help="B's face upscaler (`doppel train-upscaler`): auto uses it when the model has one, "
                          "on requires one, off leaves the decoder's own size"),
    "precision": Field("enum", "auto", ("auto", "fp32", "bf16"),
                       help="the network's arithmetic: auto is bf16 where the processor computes it natively "
                            "(CPU with AMX or AVX512-BF16, CUDA with bf16) and fp32 elsewhere; bf16 takes about "
                            "half fp32's time on such a CPU, the decoder's face 0.2 code values from fp32's on "
                            "average, 3.5 at most (bench/results/precision.md); fp32 for "
                            "renders that must match across unlike machines"),
    "runtime": Field("enum", "auto", ("auto", "torch", "openvino", "onnxruntime"),
                     help="what runs the network in a render: auto is OpenVINO where the network runs on the "
                          "CPU without B's face upscaler (no torch import: each render process starts ~1 s "
                          "sooner, and a face takes ~0.6x torch's time at bf16; bench/results/swap.md 1s), "
                          "ONNX Runtime there at fp32 where OpenVINO is not installed, torch elsewhere; at "
                          "fp32 the face is within float32 rounding of torch's on every runtime"),
    "smoothing.landmarks": Field("bool", True, help="smooth landmarks over time"),
    "smoothing.temporal": Field("float", 0.5, minimum=0.0, maximum=1.0, help="temporal smoothing strength"),
    "smoothing.colour": Field("float", 0.0, minimum=0.0, maximum=1.0,
                              help="smoothing of the rct colour statistics per face over time (0: off)"),
    "handles": Field("int", 0, minimum=0, maximum=10000, help="frames rendered before/after each clip"),
    "detect_every": Field("int", 8, minimum=1, maximum=1000, help="detect every N frames, track between"),
    "min_face": Field("int", 40, minimum=8, maximum=4096, help="smallest face searched for (px)"),
    "output.codec": Field("enum", "prores_hq", CODECS, help="video codec"),
    "output.container": Field("enum", "mov", CONTAINERS, help="container (checked against the codec)"),
    "output.pix_fmt": Field("str", None, nullable=True,
                            help="pixel format (null: the codec's default; source: the source's layout and depth, "
                                 "or the nearest deeper one the codec takes)"),
    "output.audio": Field("enum", "pcm", ("pcm", "aac", "none"), help="audio of the rendered clip"),
    "output.name": Field("str", "{clip}_{start}-{end}.doppel", help="file name pattern, extension added"),
    "output.matte": Field("bool", False, help="also write the blend mask as a matte clip <name>.matte.mov "
                                              "(ProRes 4444, mask in alpha and luma; same frames and timecode)"),
    "output.plate": Field("bool", False, help="also write the unblended swapped-face plate <name>.plate.mov "
                                              "(ProRes 4444, the warped face with the mask as alpha)"),
    "output.color.primaries": Field("enum", "source", ("source", "bt709", "bt2020", "smpte170m", "bt470bg")),
    "output.color.transfer": Field("enum", "source", ("source", "bt709", "smpte2084", "arib-std-b67", "smpte170m")),
    "output.color.matrix": Field("enum", "source", ("source", "bt709", "bt2020nc", "smpte170m", "bt470bg")),
    "output.color.range": Field("enum", "source", ("source", "tv", "pc")),
    "colour_management.config": Field("str", "ocio://studio-config-latest",
                                      help="OpenColorIO config: an ocio:// built-in or a config.ocio path"),
    "colour_management.source_space": Field("str", None, nullable=True,
                                            help="the shot's colour space, e.g. ARRI LogC3 (EI800) (null: unmanaged)"),
    "colour_management.working_space": Field("str", "Rec.1886 Rec.709 - Display",
                                             help="the display-referred space the model learned in"),
    "signing.cert": Field("path", None, nullable=True, help="C2PA certificate chain (PEM)"),
    "signing.key": Field("path", None, nullable=True, help="C2PA private key (PEM)"),
}
# Mappings that exist only to group keys; `output.color: source` is a shorthand.
GROUPS = ("mask", "smoothing", "output", "output.color", "colour_management", "signing")

# Short names accepted in marker overrides (`FACESWAP codec=ffv1 mask=ellipse`).
ALIASES: dict[str, str] = {
    "color": "colour",
    "mask": "mask.kind",
    "holdout": "occlusion_matte",
    "erode": "mask.erode",
    "feather": "mask.feather",
    "forehead": "mask.forehead",
    "temporal": "smoothing.temporal",
    "colour_smoothing": "smoothing.colour",
    "smooth_landmarks": "smoothing.landmarks",
    "codec": "output.codec",
    "container": "output.container",
    "pix_fmt": "output.pix_fmt",
    "audio": "output.audio",
    "name": "output.name",
    "matte": "output.matte",
    "plate": "output.plate",
    "source_space": "colour_management.source_space",
    "working_space": "colour_management.working_space",
    "ocio_config": "colour_management.config",
}
