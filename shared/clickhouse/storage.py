"""The filesystem under the embedded engine's directory, and whether creating files there is slow.

Every insert writes a new part: a directory and about fifteen files; merges write more and
delete the parts they replace. On ext4 without a journal, the kernel will not reuse an inode
freed in the last minute or so (ext4's ``recently_deleted``) and checks every such inode before
it allocates a new one, so each new file costs more the more files were deleted lately — and
the engine deletes files all the time. Measured on the 2-core box, 800 inserts of 150 scores
into the same table, two loop-mounted ext4 filesystems on the same disk: with a journal 7.6-7.9
ms of wall time and 3.5-3.6 ms of kernel time per insert; without one 18.7-23.4 ms and 14.6-20.5
ms. The worker at 2,000 alerts/s (features embedded): p99 203-225 ms and 17-18 % of a core in
the kernel with a journal, 303-355 ms and 39-40 % without.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MOUNTINFO = Path("/proc/self/mountinfo")
SYSFS = Path("/sys")


@dataclass(frozen=True)
class Mount:
    point: Path
    fstype: str
    device: str  # major:minor


def _unescape(field: str) -> str:
    """mountinfo writes a space, tab, newline and backslash in a path as octal escapes."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def mount_of(path: Path, mountinfo: Path = MOUNTINFO) -> Mount | None:
    """The mount holding ``path`` (the deepest mount point above it); None where the kernel
    does not say (not Linux)."""
    try:
        lines = mountinfo.read_text().splitlines()
    except OSError:
        return None
    target = path.expanduser().resolve()
    best: Mount | None = None
    for line in lines:
        fields = line.split()
        if "-" not in fields or len(fields) < 5:
            continue
        separator = fields.index("-")
        if separator + 1 >= len(fields):
            continue
        point = Path(_unescape(fields[4]))
        if not target.is_relative_to(point):
            continue
        if best is None or len(point.parts) >= len(best.point.parts):  # later mounts cover earlier
            best = Mount(point, fields[separator + 1], fields[2])
    return best


def has_journal(mount: Mount, sysfs: Path = SYSFS) -> bool | None:
    """For an ext4 mount: whether it keeps a journal (None: not ext4, or the kernel does not say)."""
    if mount.fstype != "ext4":
        return None
    try:
        device = (sysfs / "dev" / "block" / mount.device).resolve().name
        task = (sysfs / "fs" / "ext4" / device / "journal_task").read_text().strip()
    except OSError:
        return None
    return task != "<none>"


def describe(path: Path, mountinfo: Path = MOUNTINFO, sysfs: Path = SYSFS) -> str:
    """The filesystem under ``path`` in a few words (for logs and benchmark reports)."""
    mount = mount_of(path, mountinfo)
    if mount is None:
        return "unknown"
    journal = has_journal(mount, sysfs)
    suffix = "" if journal is None else (" with a journal" if journal else " without a journal")
    return f"{mount.fstype}{suffix} at {mount.point}"


def slow_file_creation(path: Path, mountinfo: Path = MOUNTINFO, sysfs: Path = SYSFS) -> str | None:
    """Why the engine's writes under ``path`` will cost several times their usual CPU, or None."""
    mount = mount_of(path, mountinfo)
    if mount is None or has_journal(mount, sysfs) is not False:
        return None
    return (f"the embedded ClickHouse directory {path} is on ext4 without a journal ({mount.point}): "
            "there every new file scans the inodes freed lately, and the engine creates and "
            "deletes files with every insert and merge (measured: 4-6x the kernel time per insert, "
            "worker p99 at 2,000 alerts/s 300-350 ms instead of 200-230 ms); put it on a "
            "filesystem with a journal (ext4's default, xfs) or use a ClickHouse server")
