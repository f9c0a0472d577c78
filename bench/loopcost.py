#!/usr/bin/env python3
"""The reactor's own CPU per main-loop turn, in memory: Twisted's ``ReactorBase.mainLoop`` and
ingressd's (``ingressd/reactor.py``) alternately, on the same reactor class.

Each turn of a busy server where no timed call is due is a poll, its events, and the loop's
own work around them; this measures that work alone: the poll is replaced by a counter (no
system call, no events), with five timed calls pending far in the future (the server's
timers). Prints the CPU µs per turn of each loop, one line per round.

    .venv/bin/python bench/loopcost.py                 # 5 rounds of 200,000 turns each
"""

from __future__ import annotations

import argparse
import time

import memcost

memcost.use_tree_source()

from twisted.internet.base import ReactorBase  # noqa: E402

from ingressd.reactor import DirectDispatchEPollReactor  # noqa: E402


def per_turn(main_loop, turns: int) -> float:
    """CPU µs per turn of ``main_loop`` on a fresh reactor whose poll only counts turns."""
    reactor = DirectDispatchEPollReactor()
    for index in range(5):
        reactor.callLater(100 + index, lambda: None)
    reactor._insertNewDelayedCalls()
    left = [turns]

    def iteration(timeout) -> None:
        left[0] -= 1
        if not left[0]:
            reactor._started = False

    reactor.doIteration = iteration
    reactor._started = reactor.running = True
    try:
        start = time.process_time()
        main_loop(reactor)
        return (time.process_time() - start) / turns * 1e6
    finally:
        reactor._poller.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--turns", type=int, default=200_000, help="turns per round (default 200,000)")
    p.add_argument("--rounds", type=int, default=5, help="rounds (default 5)")
    args = p.parse_args()
    for _ in range(args.rounds):
        twisteds = per_turn(ReactorBase.mainLoop, args.turns)
        ours = per_turn(DirectDispatchEPollReactor.mainLoop, args.turns)
        print(f"main loop, CPU µs a turn: Twisted's {twisteds:.3f}, ingressd's {ours:.3f}")


if __name__ == "__main__":
    main()
