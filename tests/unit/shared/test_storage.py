"""Which filesystem holds the embedded engine's directory, read from fake /proc and /sys trees."""

from __future__ import annotations

from pathlib import Path

from shared.clickhouse.storage import describe, mount_of, slow_file_creation

MOUNTS = """\
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard
25 24 0:23 / /dev/shm rw,relatime - tmpfs tmpfs rw
45 27 7:0 / /srv/journaled rw,relatime - ext4 /dev/loop0 rw
46 27 7:1 / /srv/bare rw,relatime - ext4 /dev/loop1 rw
47 27 8:16 / /srv/with\\040space rw,relatime shared:5 - xfs /dev/sdb rw
48 46 7:0 / /srv/bare/inner rw,relatime - ext4 /dev/loop0 rw
"""


def fake_system(tmp_path: Path) -> tuple[Path, Path]:
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(MOUNTS)
    sysfs = tmp_path / "sys"
    for device, name, journal in (("254:0", "vda", "<none>"), ("7:0", "loop0", "6693"),
                                  ("7:1", "loop1", "<none>"), ("8:16", "sdb", None)):
        kernel = sysfs / "devices" / "virtual" / "block" / name
        kernel.mkdir(parents=True)
        (sysfs / "dev" / "block").mkdir(parents=True, exist_ok=True)
        (sysfs / "dev" / "block" / device).symlink_to(kernel)
        if journal is not None:
            (sysfs / "fs" / "ext4" / name).mkdir(parents=True)
            (sysfs / "fs" / "ext4" / name / "journal_task").write_text(journal + "\n")
    return mountinfo, sysfs


def test_ext4_without_a_journal_is_named_with_what_to_do(tmp_path: Path) -> None:
    mountinfo, sysfs = fake_system(tmp_path)
    warning = slow_file_creation(Path("/srv/bare/amlscore/chdb"), mountinfo, sysfs)
    assert warning is not None
    assert "/srv/bare" in warning and "without a journal" in warning and "ClickHouse server" in warning
    assert slow_file_creation(Path("/var/lib/amlscore"), mountinfo, sysfs) is not None  # the root fs


def test_a_journaled_or_other_filesystem_is_fine(tmp_path: Path) -> None:
    mountinfo, sysfs = fake_system(tmp_path)
    for path in ("/srv/journaled/chdb", "/dev/shm/chdb", "/srv/with space/chdb"):
        assert slow_file_creation(Path(path), mountinfo, sysfs) is None, path
    assert describe(Path("/srv/journaled/x"), mountinfo, sysfs) == "ext4 with a journal at /srv/journaled"
    assert describe(Path("/srv/with space/x"), mountinfo, sysfs) == "xfs at /srv/with space"


def test_the_deepest_mount_holds_the_path(tmp_path: Path) -> None:
    mountinfo, sysfs = fake_system(tmp_path)
    inner = mount_of(Path("/srv/bare/inner/chdb"), mountinfo)
    assert inner is not None and inner.point == Path("/srv/bare/inner") and inner.device == "7:0"
    assert slow_file_creation(Path("/srv/bare/inner/chdb"), mountinfo, sysfs) is None
    assert mount_of(Path("/srv/barely"), mountinfo).point == Path("/")  # a prefix is not a parent


def test_without_procfs_nothing_is_claimed(tmp_path: Path) -> None:
    assert mount_of(Path("/x"), tmp_path / "absent") is None
    assert slow_file_creation(Path("/x"), tmp_path / "absent", tmp_path) is None
    assert describe(Path("/x"), tmp_path / "absent", tmp_path) == "unknown"
