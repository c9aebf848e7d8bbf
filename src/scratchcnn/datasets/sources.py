"""Where a data set's files come from: find them, or download and verify them.

A file is looked for, in order, in

1. the folder the user names: ``data_dir=`` (``--data-dir``), then ``$SCRATCHCNN_DATA``;
2. the cache, ``$SCRATCHCNN_CACHE`` or ``~/.cache/scratchcnn``, one sub-folder per data set;
3. system copies (Debian's ``dataset-fashion-mnist`` puts Fashion-MNIST in
   ``/usr/share/datasets/fashion-mnist/``);

and, if found nowhere and ``download=True``, fetched from the data set's mirrors (in
:data:`MIRRORS` order, after ``$SCRATCHCNN_MIRROR`` if set) into the cache. Every file is
checked against the SHA-256 values in :data:`CHECKSUMS` before it is read: a download
goes to a temporary file that is renamed into place only once its checksum matches, so
the cache never holds a partial file (a cached file that fails its check anyway, say
damaged on disk, is deleted and downloaded again; a system copy that fails it is an error).

Files in a folder the user names (``data_dir``, ``$SCRATCHCNN_DATA``) are the user's own: a
digest that differs from the official file's (MNIST-format files of another data set, say) is
reported in a one-line note, "not the official mnist files; using them as given", and the
files are then checked by their reader's format checks (IDX magic and dimensions, counts of
images and labels, label range, gzip integrity, CIFAR batch structure).

Tests (or a user with a private mirror) can change :data:`MIRRORS` and :data:`CHECKSUMS`,
both plain module-level dicts.
"""
import hashlib
import http.client
import logging
import os
import urllib.error
import urllib.request

from tqdm.auto import tqdm

from ..errors import DatasetError
from ..fileio import atomic_write

#: Base URLs (ending in "/") tried in order; a file's URL is base + file name.
MIRRORS = {
    "mnist": ["https://ossci-datasets.s3.amazonaws.com/mnist/",
              "https://storage.googleapis.com/cvdf-datasets/mnist/"],
    "fashion-mnist": ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
    "cifar10": ["https://www.cs.toronto.edu/~kriz/"],
    "optdigits": ["https://archive.ics.uci.edu/ml/machine-learning-databases/optdigits/"],
}

#: Accepted SHA-256 digests of each file (several when the same data ships in several
#: byte-different packagings). ``None`` means no published digest is known: the file is
#: then only checked by its reader's format checks (exact sizes, value ranges).
#:
#: MNIST, Fashion-MNIST (upstream): tensorflow/datasets url_checksums.
#: Fashion-MNIST (Debian package dataset-fashion-mnist, second digest): the same deflate
#: streams in a normalised gzip header (no file name, mtime of the packaging). Putting the
#: upstream header back (FNAME flag, the name, mtime 1504176606 for train-*, 1504176627 for
#: t10k-*, i.e. 2017-08-31) gives the upstream files byte for byte: the tests check it.
#: CIFAR-10: the digest Keras' ``cifar10.load_data`` checks. optdigits: none published.
CHECKSUMS = {
    "mnist": {
        "train-images-idx3-ubyte.gz": ["440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"],
        "train-labels-idx1-ubyte.gz": ["3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"],
        "t10k-images-idx3-ubyte.gz": ["8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"],
        "t10k-labels-idx1-ubyte.gz": ["f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"],
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": ["3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
                                       "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7"],
        "train-labels-idx1-ubyte.gz": ["a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
                                       "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056"],
        "t10k-images-idx3-ubyte.gz": ["346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
                                      "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa"],
        "t10k-labels-idx1-ubyte.gz": ["67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
                                      "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05"],
    },
    "cifar10": {
        "cifar-10-python.tar.gz": ["6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"],
    },
    "optdigits": {
        "optdigits.tra": None,
        "optdigits.tes": None,
    },
}

#: Read-only folders where an operating system package may have put a data set.
SYSTEM_DIRS = {
    "fashion-mnist": ["/usr/share/datasets/fashion-mnist"],
    "mnist": ["/usr/share/datasets/mnist"],
}

TIMEOUT = 30  # seconds per network operation
CHUNK = 1 << 20


def cache_dir():
    """The download cache: ``$SCRATCHCNN_CACHE`` or ``~/.cache/scratchcnn``."""
    return os.environ.get("SCRATCHCNN_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "scratchcnn")


def search_dirs(name, data_dir=None):
    """The folders searched for data set ``name``, in order, as ``(kind, folder)`` pairs."""
    dirs = []
    for kind, base in (("data_dir", data_dir), ("SCRATCHCNN_DATA", os.environ.get("SCRATCHCNN_DATA"))):
        if base:
            base = os.path.expanduser(os.fspath(base))
            if not os.path.isdir(base):
                what = "--data-dir (data_dir)" if kind == "data_dir" else "$SCRATCHCNN_DATA"
                raise DatasetError(f"{what} {base!r} is not a folder" + (
                    " (it is a file: name the folder that holds the data set's files)" if os.path.exists(base)
                    else " (no such folder)"))
            dirs += [(kind, base), (kind, os.path.join(base, name))]
    dirs.append(("cache", os.path.join(cache_dir(), name)))
    dirs += [("system", d) for d in SYSTEM_DIRS.get(name, [])]
    return dirs


#: the folders a user names (``data_dir``, ``$SCRATCHCNN_DATA``): files found there that are not
#: the official ones are used as given, after a note, and checked only by their reader
USER_KINDS = ("data_dir", "SCRATCHCNN_DATA")
_log = logging.getLogger("scratchcnn.datasets")


def note(message):
    """One line for the user (on stderr, through :mod:`logging`, unless logging is set up otherwise)."""
    _log.warning(message)


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _expected(name, filename):
    try:
        return CHECKSUMS[name][filename]
    except KeyError:
        raise DatasetError(f"{name}: no entry for file {filename!r} in the checksum table") from None


def verify(name, filename, path):
    """Raise :class:`DatasetError` unless the file at ``path`` has an accepted SHA-256."""
    accepted = _expected(name, filename)
    if accepted is None:
        return
    digest = sha256_of(path)
    if digest not in accepted:
        raise DatasetError(
            f"{name}: checksum mismatch for {path!r} ({os.path.getsize(path)} bytes): SHA-256 {digest}, "
            f"expected {' or '.join(accepted)}. The file is corrupted or truncated (an interrupted "
            f"download?): delete it and load again, or replace it with a good copy.")


def _download(name, filename, url, dest, progress):
    """Fetch ``url`` into ``dest`` (atomically), checking the SHA-256 while it streams."""
    accepted = _expected(name, filename)
    request = urllib.request.Request(url, headers={"User-Agent": "scratchcnn"})

    def write(f):
        h = hashlib.sha256()
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            total = response.headers.get("Content-Length")
            with tqdm(total=int(total) if total else None, unit="B", unit_scale=True, unit_divisor=1024,
                      desc=f"{name}/{filename}", disable=not progress, leave=False) as bar:
                received = 0
                for block in iter(lambda: response.read(CHUNK), b""):
                    f.write(block)
                    h.update(block)
                    received += len(block)
                    bar.update(len(block))
        if total and received != int(total):
            raise DatasetError(f"{name}: download of {filename} from {url} was cut short: {received} of "
                               f"{total} bytes (truncated transfer); nothing was saved")
        if accepted is not None and h.hexdigest() not in accepted:
            raise DatasetError(f"{name}: checksum mismatch for {filename} downloaded from {url}: SHA-256 "
                               f"{h.hexdigest()}, expected {' or '.join(accepted)} (corrupted or truncated "
                               f"download, or the mirror changed the file); nothing was saved")

    atomic_write(dest, write)


def mirrors(name):
    env = os.environ.get("SCRATCHCNN_MIRROR")
    return ([env.rstrip("/") + "/"] if env else []) + list(MIRRORS.get(name, []))


def fetch(name, filenames, data_dir=None, download=True, progress=True):
    """Paths of ``filenames`` of data set ``name``, each found locally or downloaded.

    Returns ``{filename: path}``. Raises :class:`DatasetError` when a found file fails its
    checksum, or when some files are nowhere and cannot be downloaded (the message lists
    the missing files, where they were looked for, and how to provide them).
    """
    dirs = search_dirs(name, data_dir)
    found, missing, unofficial = {}, [], []
    for filename in filenames:
        for kind, folder in dirs:
            path = os.path.join(folder, filename)
            if os.path.isfile(path):
                try:
                    verify(name, filename, path)
                except DatasetError:
                    if kind in USER_KINDS:            # the user's own files: theirs to use as they are
                        unofficial.append(path)
                    elif kind == "cache" and download:  # a bad cached copy is replaced by a fresh download
                        os.remove(path)
                        continue
                    else:
                        raise
                found[filename] = path
                break
        else:
            missing.append(filename)
    if unofficial:
        folders = sorted({os.path.dirname(p) for p in unofficial})
        names = ", ".join(os.path.basename(p) for p in unofficial)
        note(f"note: {', '.join(folders)}: not the official {name} files ({names}: their SHA-256 differs); "
             f"using them as given (their format is checked as they are read)")
    if not missing:
        return found
    failures, unreachable = [], set()
    if download:
        dest_dir = os.path.join(cache_dir(), name)
        for filename in list(missing):
            for base in mirrors(name):
                if base in unreachable:  # a server that did not answer is not asked again
                    continue
                url = base + filename
                dest = os.path.join(dest_dir, filename)
                try:
                    _download(name, filename, url, dest, progress)
                except DatasetError as exc:
                    failures.append(str(exc))
                    continue
                except urllib.error.HTTPError as exc:  # the server answered: try the next file there too
                    failures.append(f"{url}: {exc}")
                    continue
                except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
                    failures.append(f"{url}: {exc} (not asked again)")
                    unreachable.add(base)
                    continue
                found[filename] = dest
                missing.remove(filename)
                break
    if missing:
        looked = "\n".join(f"  - {folder} ({kind})" for kind, folder in dirs)
        tried = ("\ndownload attempts:\n" + "\n".join(f"  - {f}" for f in failures)) if failures else (
            "\ndownloading is off (download=False)" if not download else "\nno mirror is known for it")
        raise DatasetError(
            f"data set {name!r}: missing file(s) {', '.join(missing)}.\nlooked in:\n{looked}{tried}\n"
            f"To provide them, put the files in a folder and pass data_dir=... (command line: --data-dir) "
            f"or set SCRATCHCNN_DATA to it, or copy them into {os.path.join(cache_dir(), name)}; "
            f"with a network connection, load with download=True.")
    return found
