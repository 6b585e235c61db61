"""``python -m stream.scoring CALLS_FD READS_FD``: the scoring process, as the Faust process's
supervisor (:mod:`stream.scoring_supervisor`) starts it, with the two pipes it inherited.

The first message on the calls pipe says what to run: the parent's ``sys.path`` (so a service
named by module path imports here as it does there) and the arguments of
:func:`stream.scoring.main.serve`. Settings cross the pipe, never the command line, which any
local user can read."""

from __future__ import annotations

import pickle
import sys
from multiprocessing.connection import Connection


def main(argv: list[str]) -> None:
    calls, reads = (Connection(int(fd)) for fd in argv[1:3])
    path, args = pickle.loads(calls.recv_bytes())
    sys.path.extend(entry for entry in path if entry not in sys.path)
    from stream.scoring.main import serve

    serve(calls, reads, *args)


if __name__ == "__main__":
    main(sys.argv)
