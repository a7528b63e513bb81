"""Video in and out: encode frames to mp4 / webm / gif, save PNG sequences, read video files.

Everything goes through the ffmpeg binary bundled with imageio-ffmpeg (it works offline).
Frames are streamed: each one is converted and piped to ffmpeg as soon as it is produced,
so a 300-frame animation never sits in memory.

Pitfalls handled here:

* mp4 (H.264) and webm (VP9) are written as yuv420p, which needs an even width and height.
  ffmpeg given an odd size through imageio-ffmpeg writes a 0-byte file without an error, and
  imageio-ffmpeg's default ``macro_block_size=16`` silently resizes instead. We pass
  ``macro_block_size=1`` and either pad the frame by one pixel (repeating the edge) or
  refuse with a clear message (``odd_size``).
* imageio-ffmpeg's default ``quality=5`` adds ``-crf 25``; we pass ``quality=None`` and our
  own ``-crf``.
* Output files are written to a temporary name beside the target and renamed at the end,
  so a crash, an error in the frame source or a cancel never leaves a half-written file.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any, Iterator, Literal, NamedTuple

from nodegraph import Doc, NodeInputError, Range, RunContext, atomic_path, atomic_write, node
from nodegraph.context import publish_mode
from nodegraph.frames import FrameStream
from nodegraph.lazy import lazy_import
from nodegraph.types import FileInput, Frames, Image, OutputFile

from .image import image_to_pil, image_to_uint8, uint8_to_image

torch = lazy_import("torch")
np = lazy_import("numpy")

VideoFormat = Literal["mp4", "webm", "gif"]
Preset = Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"]
VIDEO_EXTENSIONS = (".mp4", ".webm", ".gif", ".mov", ".mkv", ".avi", ".m4v")

# VP9 has no x264-style presets: map them onto libvpx's deadline / cpu-used speed knobs.
_VP9_SPEED = {
    "ultrafast": ("realtime", 8),
    "superfast": ("realtime", 8),
    "veryfast": ("realtime", 7),
    "faster": ("good", 5),
    "fast": ("good", 4),
    "medium": ("good", 3),
    "slow": ("good", 2),
    "slower": ("good", 1),
    "veryslow": ("good", 0),
}


# ---- frames in, one picture at a time ---------------------------------------------------------


def iter_pictures(frames: Any, input_name: str = "frames") -> Iterator[Any]:
    """Yield single pictures (3×H×W tensors) from a FrameStream, an IMAGE batch or a list of IMAGEs."""
    if hasattr(frames, "dim"):  # an IMAGE batch
        source: Any = [frames]
    elif isinstance(frames, (FrameStream, list, tuple)):
        source = frames
    else:
        raise NodeInputError(input_name, "needs FRAMES or an IMAGE batch", expected="FRAMES or IMAGE", got=type(frames).__name__)
    for item in source:
        if not hasattr(item, "dim"):
            raise NodeInputError(input_name, "a frame is not an image tensor", expected="IMAGE", got=type(item).__name__)
        if item.dim() == 3:
            item = item.unsqueeze(0)
        if item.dim() != 4 or item.shape[1] != 3:
            raise NodeInputError(input_name, "a frame is not an RGB image", expected="B×3×H×W", got=str(tuple(item.shape)))
        for index in range(item.shape[0]):
            yield item[index]


def _known_count(frames: Any) -> int | None:
    if hasattr(frames, "dim"):
        return int(frames.shape[0])
    if isinstance(frames, FrameStream):
        return frames.count
    if isinstance(frames, (list, tuple)):
        return sum(int(f.shape[0]) if getattr(f, "dim", lambda: 0)() == 4 else 1 for f in frames)
    return None


def _to_uint8_hwc(picture: Any) -> Any:
    return image_to_uint8(picture.unsqueeze(0))[0]


def _pad_even(array: Any) -> Any:
    h, w = array.shape[:2]
    ph, pw = h % 2, w % 2
    if not (ph or pw):
        return array
    return np.pad(array, ((0, ph), (0, pw), (0, 0)), mode="edge")


def _with_suffix(filename: str, fmt: str) -> str:
    suffix = Path(filename).suffix.lower()
    if suffix == f".{fmt}":
        return filename
    if suffix in VIDEO_EXTENSIONS:
        raise NodeInputError(
            "filename", f"the file name's extension does not match format {fmt!r}", expected=f".{fmt}", got=suffix
        )
    return f"{filename}.{fmt}"


def _writer_options(fmt: str, crf: int, preset: str, gif_palette: str) -> dict:
    if fmt == "mp4":
        if crf > 51:
            raise NodeInputError("crf", "libx264 takes crf 0..51", expected="0 <= crf <= 51", got=str(crf))
        return dict(
            codec="libx264",
            pix_fmt_out="yuv420p",
            output_params=["-crf", str(crf), "-preset", preset, "-movflags", "+faststart"],
        )
    if fmt == "webm":
        deadline, cpu_used = _VP9_SPEED[preset]
        return dict(
            codec="libvpx-vp9",
            pix_fmt_out="yuv420p",
            output_params=["-crf", str(crf), "-b:v", "0", "-deadline", deadline, "-cpu-used", str(cpu_used)],
        )
    if gif_palette == "optimal":
        # one palette computed from all frames (ffmpeg buffers them, Python does not)
        return dict(
            codec="gif",
            pix_fmt_out=None,
            output_params=["-filter_complex", "split[a][b];[a]palettegen[p];[b][p]paletteuse", "-loop", "0"],
        )
    return dict(codec="gif", pix_fmt_out="rgb8", output_params=["-loop", "0"])


def encode_video(
    frames: Any,
    path: Path,
    *,
    fmt: str = "mp4",
    fps: float = 15.0,
    crf: int = 17,
    preset: str = "veryfast",
    odd_size: str = "pad",
    gif_palette: str = "optimal",
    ctx: RunContext | None = None,
) -> tuple[int, int, int]:
    """Stream pictures into a video file at `path` (atomically). Returns (frames, width, height)."""
    import imageio_ffmpeg

    options = _writer_options(fmt, crf, preset, gif_palette)
    needs_even = fmt in ("mp4", "webm")
    total = _known_count(frames)
    pictures = iter_pictures(frames)
    written = 0
    size: tuple[int, int] | None = None  # (width, height) of the input frames
    with atomic_path(path) as tmp:
        writer = None
        try:
            for picture in pictures:
                if ctx is not None:
                    ctx.check_cancelled()
                h, w = int(picture.shape[-2]), int(picture.shape[-1])
                if size is None:
                    size = (w, h)
                    if needs_even and (w % 2 or h % 2):
                        if odd_size == "error":
                            raise NodeInputError(
                                "frames",
                                f"{fmt} (yuv420p) needs an even width and height; set odd_size='pad' "
                                "to add one repeated pixel row/column, or resize the frames",
                                expected="even width and height",
                                got=f"{w}×{h}",
                            )
                    out_w = w + (w % 2 if needs_even else 0)
                    out_h = h + (h % 2 if needs_even else 0)
                    writer = imageio_ffmpeg.write_frames(
                        str(tmp),
                        (out_w, out_h),
                        fps=float(fps),
                        quality=None,
                        macro_block_size=1,
                        ffmpeg_log_level="error",
                        **options,
                    )
                    writer.send(None)
                elif (w, h) != size:
                    raise NodeInputError(
                        "frames",
                        f"frame {written} has a different size from the first frame",
                        expected=f"{size[0]}×{size[1]}",
                        got=f"{w}×{h}",
                    )
                array = _to_uint8_hwc(picture)
                if needs_even:
                    array = _pad_even(array)
                assert writer is not None
                writer.send(np.ascontiguousarray(array).tobytes())
                written += 1
                if ctx is not None and total:
                    ctx.progress(written, total)
            if writer is None:
                raise NodeInputError("frames", "there are no frames to encode", expected="at least one frame", got="0")
        finally:
            if writer is not None:
                writer.close()  # ffmpeg finishes (or is stopped); the temp file goes if we failed
        if ctx is not None:
            ctx.check_cancelled()
    assert size is not None
    return written, size[0], size[1]


# ---- reading videos back ----------------------------------------------------------------------


class VideoInfo(NamedTuple):
    frames: int
    width: int
    height: int
    fps: float
    duration: float


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Frame count, size, fps and duration of a video file (decodes it once in ffmpeg)."""
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    try:
        meta = next(reader)
    finally:
        reader.close()
    count, seconds = imageio_ffmpeg.count_frames_and_secs(str(path))
    width, height = meta["size"]
    return VideoInfo(int(count), int(width), int(height), float(meta.get("fps") or 0.0), float(seconds))


def read_video_frames(path: str | os.PathLike, every_nth: int = 1, max_frames: int = 0) -> Iterator[Any]:
    """Decode a video lazily: yield 1×3×H×W IMAGE tensors one at a time."""
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
    try:
        meta = next(reader)
        width, height = meta["size"]
        kept = 0
        for index, raw in enumerate(reader):
            if index % every_nth:
                continue
            array = np.frombuffer(raw, dtype=np.uint8).reshape(height, width, 3)
            yield uint8_to_image(array.copy())
            kept += 1
            if max_frames and kept >= max_frames:
                break
    finally:
        reader.close()  # stops ffmpeg if we leave early


# ---- nodes ---------------------------------------------------------------------------------------


@node(category="video", name="VideoEncode", output_node=True, output="path")
def video_encode(
    ctx: RunContext,
    frames: Frames | Image,
    filename: Annotated[OutputFile, Doc("file under the output folder; the extension follows format")] = "animation.mp4",
    format: Annotated[VideoFormat, Doc("mp4: H.264, webm: VP9, gif")] = "mp4",
    fps: Annotated[float, Range(0.1, 240.0)] = 15.0,
    crf: Annotated[int, Range(0, 63), Doc("quality: lower is better and larger (mp4 0..51; Deforum uses 17)")] = 17,
    preset: Annotated[Preset, Doc("encoder speed: slower gives smaller files at the same quality")] = "veryfast",
    odd_size: Annotated[
        Literal["pad", "error"], Doc("mp4/webm need even sizes: pad adds one repeated pixel row/column")
    ] = "pad",
    gif_palette: Annotated[
        Literal["optimal", "fixed"], Doc("gif only: optimal computes one palette from all frames; fixed streams")
    ] = "optimal",
) -> str:
    """Encode FRAMES (or an IMAGE batch) to a video file with ffmpeg.

    Frames are streamed to ffmpeg one at a time. The file appears only when it is complete:
    on an error or a cancel nothing is left behind."""
    name = _with_suffix(filename, format)
    path = ctx.output_path(name, "filename")
    if path.exists() and path.is_dir():
        raise NodeInputError("filename", "names a folder", expected="a file name", got=name)
    encode_video(
        frames,
        path,
        fmt=format,
        fps=fps,
        crf=crf,
        preset=preset,
        odd_size=odd_size,
        gif_palette=gif_palette,
        ctx=ctx,
    )
    ctx.wrote(path)
    return str(path)


@node(category="video", name="SaveFrames", output_node=True, output="path")
def save_frames(
    ctx: RunContext,
    frames: Frames | Image,
    folder: Annotated[OutputFile, Doc("folder under the output root")] = "frames",
    prefix: Annotated[str, Doc("file name prefix; files are <prefix>00000.png, ...")] = "frame_",
    start: Annotated[int, Range(0, 10_000_000)] = 0,
) -> str:
    """Write every frame as a PNG (<prefix>00000.png, ...) into a folder.

    The sequence is written into a temporary folder and moved into place at the end, so a
    failed or cancelled run leaves no partial sequence."""
    if not prefix or any(sep in prefix for sep in ("/", "\\", "\0")) or prefix.startswith("."):
        raise NodeInputError("prefix", "must be a plain file name prefix", expected="e.g. frame_", got=repr(prefix))
    target = ctx.output_path(folder, "folder")
    if target.exists() and not target.is_dir():
        raise NodeInputError("folder", "names a file, not a folder", got=folder)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent))
    total = _known_count(frames)
    names: list[str] = []
    try:
        for index, picture in enumerate(iter_pictures(frames)):
            ctx.check_cancelled()
            name = f"{prefix}{start + index:05d}.png"
            with atomic_write(tmp / name) as handle:
                image_to_pil(picture.unsqueeze(0)).save(handle, format="PNG")
            names.append(name)
            if total:
                ctx.progress(index + 1, total)
        if not names:
            raise NodeInputError("frames", "there are no frames to save", expected="at least one frame", got="0")
        ctx.check_cancelled()
        if not target.exists():
            publish_mode(tmp, target)  # mkdtemp made it 0700
            os.replace(tmp, target)
        else:
            for name in names:
                publish_mode(tmp / name, target / name)  # a frame written over keeps its mode
                os.replace(tmp / name, target / name)
            tmp.rmdir()
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for name in names:
        ctx.wrote(target / name)
    return str(target)


class LoadedVideo(NamedTuple):
    frames: Frames
    fps: float
    frame_count: int


@node(category="video", name="LoadVideoFrames")
def load_video_frames(
    ctx: RunContext,
    video: Annotated[str, FileInput(extensions=VIDEO_EXTENSIONS), Doc("video file under the input folder")],
    every_nth: Annotated[int, Range(1, 1000), Doc("keep one frame in every n (Deforum extract_nth_frame)")] = 1,
    max_frames: Annotated[int, Range(0, 1_000_000), Doc("stop after this many frames; 0 = all")] = 0,
) -> LoadedVideo:
    """Read a video file as FRAMES, decoded lazily one frame at a time (plus its fps)."""
    path = ctx.input_path(video, "video")
    if path.suffix.lower() not in VIDEO_EXTENSIONS:
        raise NodeInputError("video", "not a video file name", expected=", ".join(VIDEO_EXTENSIONS), got=path.suffix)
    try:
        info = probe_video(path)
    except Exception as exc:  # ffmpeg could not read it
        raise NodeInputError("video", f"cannot read {path.name}: {str(exc).strip().splitlines()[0]}") from None
    if info.frames == 0:
        raise NodeInputError("video", f"{path.name} has no video frames")
    count = (info.frames + every_nth - 1) // every_nth
    if max_frames:
        count = min(count, max_frames)
    fps = info.fps / every_nth if info.fps else 0.0
    stream = FrameStream(
        lambda: read_video_frames(path, every_nth, max_frames),
        count=count,
        fps=fps,
        width=info.width,
        height=info.height,
    )
    return LoadedVideo(stream, fps, count)
