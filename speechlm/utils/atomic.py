"""Atomic file writes: write to a temporary file beside the target, then rename.

A crash or a validation error part-way through never leaves a half-written file at the target path, and an
existing file at the target is only replaced once the new content is complete.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _default_mode(path: Path, is_dir: bool) -> None:
    """mkstemp/mkdtemp create private (0600/0700) entries; give the final one the usual umask-based mode."""
    with contextlib.suppress(OSError):
        os.chmod(path, (0o777 if is_dir else 0o666) & ~_umask())


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto ``target`` if the block succeeds.

    Args:
        target: final path. Its parent folder is created if missing.
        suffix: suffix for the temporary file (defaults to the target's, so format sniffing by extension works).

    The temporary file is removed if the block raises.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=suffix if suffix is not None else target.suffix, dir=target.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        _default_mode(tmp, is_dir=False)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def atomic_write_text(target: str | os.PathLike, text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``target`` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding=encoding)


def atomic_write_bytes(target: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``target`` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike, owned: Collection[str] = (), last: Sequence[str] = ()
               ) -> Iterator[Path]:
    """Yield a temporary folder beside ``target``; on success its files replace the tool's files in ``target``.

    Used for checkpoint folders. Nothing in ``target`` is deleted except the entries named in ``owned`` (what
    the tool wrote there before, e.g. the files of the previous checkpoint): everything else in the folder (a
    user's notes, a model card, a training run's files) stays where it is. Writing a name that is in ``target``
    but not in ``owned`` raises :class:`FileExistsError` and changes nothing.

    A missing or empty ``target`` is replaced by the new folder with one rename. Otherwise, on Linux, the new
    folder and ``target`` are swapped with one ``renameat2(RENAME_EXCHANGE)`` (readers see the old complete
    folder or the new complete one, never a mix), then the entries that were not ``owned`` move from the old
    folder into the new one and the old ``owned`` files are deleted. Where the swap is not available the new
    files are moved in one by one with ``os.replace`` (each file is whole at every moment; ``last`` names the
    ones to move last, e.g. the file that describes the others), then stale ``owned`` files are deleted.

    The temporary folder (a hidden ``.NAME.tmp-*`` sibling) is removed if the block raises: a failure while
    writing leaves ``target`` as it was.
    """
    import shutil

    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield tmp
        _default_mode(tmp, is_dir=True)
        for root, dirs, files in os.walk(tmp):  # writers such as safetensors create private (0600) files
            for name in files:
                _default_mode(Path(root) / name, is_dir=False)
            for name in dirs:
                _default_mode(Path(root) / name, is_dir=True)
        swapped = _install_dir(tmp, target, set(owned), list(last))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if swapped is not None:  # ``tmp`` now holds the previous folder: never removed as a whole
        _move_back(tmp, target, *swapped)


def _install_dir(new: Path, target: Path, owned: set[str], last: list[str]
                 ) -> tuple[list[str], list[str]] | None:
    """Put the complete folder ``new`` in place at ``target`` (see :func:`atomic_dir`).

    Returns None when done, or, after a swap, (the entries to move back from ``new`` — now the previous
    folder — into ``target``, the previous folder's owned entries to delete)."""
    if not target.exists() and not target.is_symlink():
        os.replace(new, target)
        return None
    if target.is_symlink() or not target.is_dir():
        raise FileExistsError(f"{target} exists and is not a folder")
    present = set(os.listdir(target))
    if not present:
        os.replace(new, target)  # rename(2) onto an empty folder is atomic
        return None
    incoming = set(os.listdir(new))
    clash = sorted((incoming & present) - owned)
    if clash:
        raise FileExistsError(f"{target}: would overwrite {', '.join(clash)}, which speechlm did not write there")
    kept = sorted(present - owned)  # what someone else put there: never deleted
    old_owned = sorted(present & owned)
    if _exchange(new, target):
        return kept, old_owned
    order = sorted(incoming, key=lambda n: (last.index(n) if n in last else -1, n))
    for name in order:
        os.replace(new / name, target / name)
    for name in old_owned:
        if name not in incoming:
            _remove(target / name)
    new.rmdir()
    return None


def _move_back(old: Path, target: Path, kept: list[str], old_owned: list[str]) -> None:
    """After a swap: the entries that were not ours go back beside the new files; the old owned ones go."""
    for name in kept:
        try:
            os.replace(old / name, target / name)
        except OSError as exc:
            raise OSError(f"{target}: the new files are in place, but moving {name} back failed ({exc}); "
                          f"it is in {old}") from None
    for name in old_owned:
        _remove(old / name)
    with contextlib.suppress(OSError):
        old.rmdir()  # not empty only if an entry appeared there meanwhile: then it stays, nothing deleted


def _remove(path: Path) -> None:
    import shutil

    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2(RENAME_EXCHANGE)``); False where that is not available."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes
    import errno

    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # glibc < 2.28, musl without it
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    at_fdcwd, rename_exchange = -100, 2
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EPERM):  # the file system cannot swap
        return False
    raise OSError(err, os.strerror(err), str(b))
