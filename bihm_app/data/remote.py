"""Data sets the package cannot ship, and where to download them.

Every file has a URL and an expected SHA-256. A download whose digest differs is deleted, never
used. Where no digest has been verified yet the field is None and `bihm data fetch` refuses to
download until the user supplies one (``--sha256``) — a checksum is never "pinned on first
download". Users can also fetch any file with ``--url`` and ``--sha256``.

| name        | files (format)                                 | dim | train/valid/test     | sha256 |
|-------------|------------------------------------------------|-----|----------------------|--------|
| ocr_letters | DEBD ocr_letters.{train,valid,test}.data (csv) | 128 | 32152 / 10000 / 10000 | unknown |
| rcv1        | DEBD rcv1.{train,valid,test}.data (csv)        | 150 | 40000 / 10000 / 150000 | unknown |
| web         | no public copy known                           | 300 | 14000 / 3188 / 32561 | —      |
| caltech101  | Marlin's caltech101_silhouettes_28_split1.mat  | 784 | 4100 / 2264 / 2307   | unknown |

DEBD = github.com/arranger1044/DEBD at a fixed commit (the same repository the embedded UCI sets
were checked against); sizes are those of Larochelle & Murray (2011) and Marlin et al. (2010).
"""

from __future__ import annotations

from dataclasses import dataclass

_DEBD = "https://raw.githubusercontent.com/arranger1044/DEBD/d5e0c95fef9e418a39feccddae5d7a7526c1e8de/datasets"


@dataclass(frozen=True)
class RemoteFile:
    """One file to download. `split` is train/valid/test, or "all" for a file holding every split."""

    split: str
    url: str
    sha256: str | None

    @property
    def filename(self) -> str:
        return self.url.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0] or f"{self.split}.bin"


@dataclass(frozen=True)
class RemoteDataset:
    """A fetchable data set: its files, how to convert them, and the sizes to expect."""

    name: str
    description: str
    files: tuple[RemoteFile, ...]
    fmt: str  # a reader format understood by `readers.read_file` ("csv", "npz", "mat", ...)
    dim: int | None = None
    sizes: tuple[int, int, int] | None = None
    image_shape: tuple[int, int] | None = None
    transpose_images: bool = False  # MATLAB column-major images: transpose each one to row-major
    note: str = ""


REMOTE: dict[str, RemoteDataset] = {
    r.name: r
    for r in (
        RemoteDataset(
            "ocr_letters",
            "OCR letters (Taskar), 16x8 binary images, NADE split",
            tuple(RemoteFile(s, f"{_DEBD}/ocr_letters/ocr_letters.{s}.data", None) for s in ("train", "valid", "test")),
            "csv", 128, (32152, 10000, 10000), (16, 8),
        ),
        RemoteDataset(
            "rcv1",
            "RCV1 newswire, 150 binary word features, NADE split",
            tuple(RemoteFile(s, f"{_DEBD}/rcv1/rcv1.{s}.data", None) for s in ("train", "valid", "test")),
            "csv", 150, (40000, 10000, 150000),
        ),
        RemoteDataset(
            "web",
            "Web (Platt's w-series), 300 binary features, NADE split",
            (),
            "csv", 300, (14000, 3188, 32561),
            note="no public copy with a known URL; obtain the NADE files and use `bihm data import`",
        ),
        RemoteDataset(
            "caltech101",
            "Caltech-101 silhouettes 28x28 (Marlin et al. 2010), split 1, class labels",
            (RemoteFile("all", "https://people.cs.umass.edu/~marlin/data/caltech101_silhouettes_28_split1.mat", None),),
            "mat", 784, (4100, 2264, 2307), (28, 28), transpose_images=True,
        ),
    )
}
