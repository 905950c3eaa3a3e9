"""Who may read the spool: folders 0750 and capture files 0640 of the readers' group.

The writer creates its files 0640 and its date folders 0750 (with `--group`, of the readers'
group); the supervisor prepares the folders above them the same way before a writer starts, and
hands the writer's own folder to `[capture] user` when it runs as root (the writer drops to that
user once its sockets are open and must still create files there).
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from pathlib import Path

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (extract's start-up: issue 14)
if TYPE_CHECKING:  # the modes below are read by `sluice extract`, which starts without the config module
    from appliance.config import Config

SPOOL_DIR_MODE = 0o750
CAPTURE_FILE_MODE = 0o640
# Everything the supervisor itself writes (journal, status, catalog) gets no bit for others.
UMASK = 0o027


def prepare_capture_dir(cfg: Config) -> None:
    """spool/ and spool/<host>/ exist, 0750, of the readers' group; the writer's user may write."""
    cap = cfg.sections["capture"]
    gid = grp.getgrnam(cap["readers_group"]).gr_gid if cap["readers_group"] else -1
    uid = pwd.getpwnam(cap["user"]).pw_uid if cap["user"] and os.geteuid() == 0 else -1
    cfg.capture_dir.mkdir(parents=True, exist_ok=True)
    for path in (cfg.spool, cfg.capture_dir):
        _own(path, -1, gid)
    # The writer's folder and the date folders in it (earlier writers may have run as root).
    for path in (cfg.capture_dir, *(p for p in cfg.capture_dir.iterdir() if p.is_dir() and not p.is_symlink())):
        _own(path, uid, gid)


def _own(path: Path, uid: int, gid: int) -> None:
    st = path.stat()
    if (uid != -1 and st.st_uid != uid) or (gid != -1 and st.st_gid != gid):
        os.chown(path, uid, gid)
    # the set-group-id bit of a spool made by the provisioning (2750) stays: new folders inherit
    want = SPOOL_DIR_MODE | (st.st_mode & stat.S_ISGID)
    if st.st_mode & 0o7777 != want and os.geteuid() in (0, st.st_uid):
        os.chmod(path, want)
