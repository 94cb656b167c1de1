"""Finding, checking and downloading the four MNIST IDX files before torchvision reads them.

torchvision's reader trusts its input: a truncated file ends in an AssertionError or a reshape error. Every header
and size is checked here first, so that a bad file gets a message naming it and saying what to do.
"""

import gzip
import hashlib
import math
import re
import shutil
import struct
import zlib
from pathlib import Path

from lightning.pytorch.utilities import rank_zero_info
from torchvision.datasets import MNIST

from lit_mnist.run.errors import UserError

# name -> (IDX magic number, number of dimensions, size and SHA-256 of the official file)
OFFICIAL_FILES = {
    "train-images-idx3-ubyte": (3, 47040016, "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
    "train-labels-idx1-ubyte": (1, 60008, "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
    "t10k-images-idx3-ubyte": (3, 7840016, "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
    "t10k-labels-idx1-ubyte": (1, 10008, "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
}
IMAGE_SIZE = 28  # pixels a side
NUM_CLASSES = 10  # the digits 0 to 9
UNSIGNED_BYTE = 0x08  # the IDX type code MNIST uses for pixels and labels


def raw_folder(data_dir: str | Path) -> Path:
    """Where torchvision's MNIST keeps its files under data_dir."""
    return Path(data_dir) / MNIST.__name__ / "raw"


def locate(data_dir: str | Path) -> Path:
    """The folder that holds MNIST/raw/: ``data_dir`` itself, or the folder above when it is MNIST/raw/ itself.

    Files put directly in ``data_dir`` are not looked for elsewhere: the error says where they belong.
    """
    data_dir = Path(data_dir)
    if data_dir.name == "raw" and data_dir.parent.name == MNIST.__name__ and not missing_files(data_dir.parents[1]):
        return data_dir.parents[1]
    if missing_files(data_dir) and all((data_dir / name).is_file() for name in OFFICIAL_FILES):
        raise UserError(
            f"the MNIST files are in {data_dir} itself, but they belong in {raw_folder(data_dir)}/: move them "
            "there, or point data_dir (--data.data_dir) at the folder that holds MNIST/raw/"
        )
    return data_dir


def missing_files(data_dir: str | Path) -> list[str]:
    folder = raw_folder(data_dir)
    return [name for name in OFFICIAL_FILES if not (folder / name).is_file()]


def decompress_gzipped(data_dir: str | Path) -> None:
    """Decompress each missing file that is there as NAME.gz, as most mirrors serve them, into NAME beside it (the
    .gz file stays): torchvision reads only the decompressed files."""
    folder = raw_folder(data_dir)
    for name in missing_files(data_dir):
        packed, partial = folder / f"{name}.gz", folder / f".{name}.partial"
        if not packed.is_file():
            continue
        try:
            with gzip.open(packed) as source, partial.open("wb") as target:
                shutil.copyfileobj(source, target)
            partial.replace(folder / name)
        except (gzip.BadGzipFile, EOFError, zlib.error) as error:
            partial.unlink(missing_ok=True)
            raise UserError(
                f"{packed} cannot be decompressed ({_reason(error)}): replace it with an intact copy"
            ) from None
        except OSError as error:
            partial.unlink(missing_ok=True)
            raise UserError(
                f"cannot decompress {packed} into {folder} ({error.strerror}): decompress it there yourself "
                "(gunzip -k), or copy the folder somewhere writable"
            ) from None


def download(data_dir: str | Path) -> None:
    """Download the missing files with torchvision, turning a failure into an actionable message.

    A failed download leaves nothing behind: the files and folders it created are removed again.
    """
    folder = raw_folder(data_dir)
    new_folders = [path for path in (*reversed(folder.parents), folder) if not path.exists()]
    old_files = set(folder.iterdir()) if folder.is_dir() else set()
    try:
        MNIST(str(data_dir), train=True, download=True)
    except Exception as error:  # torchvision raises RuntimeError, URLError or OSError depending on what broke
        if folder.is_dir():
            for path in set(folder.iterdir()) - old_files:
                shutil.rmtree(path) if path.is_dir() else path.unlink()
        for path in reversed(new_folders):
            if path.is_dir() and not any(path.iterdir()):
                path.rmdir()
        raise UserError(
            f"cannot download MNIST ({_reason(error)}): put the four MNIST files in {folder}/ yourself, or point "
            "data_dir (--data.data_dir) at a folder that holds MNIST/raw/"
        ) from None


def check_files(data_dir: str | Path) -> None:
    """Raise UserError unless the four IDX files exist and are well formed, with images and labels that agree."""
    folder = raw_folder(data_dir)
    missing = missing_files(data_dir)
    if missing:
        raise UserError(
            f"MNIST files missing in {folder}: {', '.join(missing)}. Copy the four MNIST files there, point "
            "data_dir (--data.data_dir) at a folder holding MNIST/raw/, or allow the download (download=True, "
            "--data.download true) with network access"
        )
    counts = {name: _check_idx(folder / name) for name in OFFICIAL_FILES}
    unofficial = [name for name in OFFICIAL_FILES if (folder / name).stat().st_size != OFFICIAL_FILES[name][1]]
    if unofficial:
        rank_zero_info(
            f"Note: {folder} holds well-formed IDX files that are not the official MNIST release: "
            f"{', '.join(unofficial)}"
        )
    for split in ("train", "t10k"):
        images, labels = counts[f"{split}-images-idx3-ubyte"], counts[f"{split}-labels-idx1-ubyte"]
        if images != labels:
            raise UserError(
                f"{folder}/{split}-images-idx3-ubyte holds {images} images but {split}-labels-idx1-ubyte holds "
                f"{labels} labels: the two files are not a pair; replace them with a matching pair"
            )


def _check_idx(path: Path) -> int:
    """Check one IDX file's header against its size (and its hash when it claims to be official); return its count."""
    ndim, official_size, official_sha256 = OFFICIAL_FILES[path.name]
    fix = f"replace {path} with an intact copy (delete it and rerun with network access to download it again)"
    size = path.stat().st_size
    header_size = 4 * (1 + ndim)
    try:
        with path.open("rb") as file:
            header = file.read(header_size)
    except OSError as error:
        raise UserError(f"cannot read {path} ({error.strerror}); {fix}") from None
    if len(header) < header_size:
        raise UserError(f"{path} is truncated: {size} bytes, too short for an IDX header; {fix}")
    zero, zero2, type_code, file_ndim, *dims = struct.unpack(f">BBBB{ndim}I", header)
    if (zero, zero2, type_code, file_ndim) != (0, 0, UNSIGNED_BYTE, ndim):
        raise UserError(f"{path} is not an IDX file of {ndim}-dimensional unsigned bytes (bad header); {fix}")
    if ndim == 3 and dims[1:] != [28, 28]:
        raise UserError(f"{path} holds {dims[1]}x{dims[2]} images, MNIST's are 28x28; {fix}")
    expected_size = header_size + math.prod(dims)
    if size != expected_size:
        state = "truncated" if size < expected_size else "longer than its header says"
        raise UserError(f"{path} is {state}: {size} bytes where its header promises {expected_size}; {fix}")
    if size == official_size and _sha256(path) != official_sha256:
        raise UserError(f"{path} has the official file's size but not its SHA-256, so it is corrupt; {fix}")
    return dims[0]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _reason(error: BaseException) -> str:
    """Why the download failed, in a few words: torchvision's message lists every mirror it tried and what each
    answered; the last answer says enough ("Name or service not known" when there is no network)."""
    text = " ".join(str(error).split()) or type(error).__name__
    answers = re.findall(r"<urlopen error (?:\[Errno -?\d+\] )?([^>]*)>", text)
    reason = answers[-1] if answers else text
    return reason if len(reason) <= 80 else reason[:77] + "..."
