#!/usr/bin/env python3
"""Independent reference model of /work/shared/SEMANTICS.md (the limiter contract).

Usage: model.py TRACE.trace.jsonl  -> prints one answer line per request, as FORMAT.md says.

Written from SEMANTICS.md and conformance/FORMAT.md only (not from core/src). Python 3
stdlib, integer arithmetic only (Python ints are unbounded, so the 128-bit products of
SEMANTICS.md section 2 are exact).

Not modelled: table-full behaviour (SEMANTICS.md section 5). The table is assumed unbounded;
if the trace's `capacity` is smaller than the number of distinct (key, policy, rule) cells the
trace touches, whether and when the table fills depends on the hash, so the model refuses the
trace (exit status 3). Neutral-cell reuse is assumed not to happen (it cannot be seen unless a
cell is reused and the clock then goes back; see README).
"""
import json
import sys

NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000

DEFAULT_CONFIG = {
    "policies": {
        "standard": [{"algorithm": "window", "limit": 120, "period_ms": 60000}],
        "messaging": [{"algorithm": "window", "limit": 300, "period_ms": 60000},
                      {"algorithm": "gcra", "limit": 5, "period_ms": 1000, "burst": 5}],
        "media": [{"algorithm": "window", "limit": 30, "period_ms": 60000}],
    },
    "routes": [{"prefix": "/v1/messages", "policy": "messaging"},
               {"prefix": "/v1/media", "policy": "media"}],
    "default_policy": "standard",
    "capacity": 65536,
}

BODY = ('{"success":false,"error":{"code":"rate_limit_exceeded",'
        '"message":"Too many requests. Please wait before retrying.",'
        '"retry_after_seconds":%d}}')


def ceil_div(a, b):
    return -((-a) // b)


class Rule:
    def __init__(self, spec):
        self.algorithm = spec["algorithm"]
        self.L = int(spec["limit"])
        self.P = int(spec["period_ms"]) * NS_PER_MS
        assert self.L >= 1 and self.P > 0
        if self.algorithm == "gcra":
            self.B = int(spec.get("burst", self.L))
            self.T = ceil_div(self.P, self.L)          # 3.1: T = ceil(P / L)
            self.capacity = self.B
        elif self.algorithm == "window":
            assert "burst" not in spec
            self.W = self.P
            self.capacity = self.L
        else:
            raise ValueError("unknown algorithm %r" % self.algorithm)

    def fresh(self):
        if self.algorithm == "gcra":
            return 0                                   # tat
        return (0, 0, 0)                               # (i, prev, curr)

    # Returns (admit, new_state_if_admitted, report) where report is computed with the state
    # after the decision (the new state if admitted, else the unchanged state).
    def decide(self, state, now, c):
        if self.algorithm == "gcra":
            return self._gcra(state, now, c)
        return self._window(state, now, c)

    def _gcra_report(self, tat, now):
        B, T = self.B, self.T
        x = max(tat, now) - now
        remaining = min(max((B * T - x) // T, 0), B)
        return {"limit": B, "remaining": remaining, "reset": x}

    def _gcra(self, tat, now, c):
        B, T = self.B, self.T
        e = max(tat, now)
        if e + c * T - now <= B * T:
            new = e + c * T
            return True, new, self._gcra_report(new, now)
        rep = self._gcra_report(tat, now)
        rep["retry"] = e + c * T - B * T - now
        return False, tat, rep

    def _roll(self, state, now):
        i, prev, curr = state
        W = self.W
        j = now // W
        if j < i:                                      # clock went back: stored window, a = 0
            return (i, prev, curr), 0
        if j == i + 1:
            prev, curr = curr, 0
        elif j > i + 1:
            prev, curr = 0, 0
        i = j
        return (i, prev, curr), now - j * W

    def _estimate(self, prev, curr, a):
        W = self.W
        return curr + (prev * (W - a)) // W

    def _window_report(self, st, a, now):
        i, prev, curr = st
        L, W = self.L, self.W
        n = self._estimate(prev, curr, a)
        if curr > 0:
            reset = (i + 1) * W + W - (W - 1) // curr - now
        elif prev > 0:
            reset = max(0, i * W + W - (W - 1) // prev - now)
        else:
            reset = 0
        return {"limit": L, "remaining": max(0, L - n), "reset": reset}

    def _window(self, state, now, c):
        L, W = self.L, self.W
        st, a = self._roll(state, now)
        i, prev, curr = st
        n = self._estimate(prev, curr, a)
        if n + c <= L:
            new = (i, prev, curr + c)
            return True, new, self._window_report(new, a, now)
        rep = self._window_report(st, a, now)
        k = L - curr - c
        if k >= 0:
            assert prev > 0
            retry = i * W + W - ((k + 1) * W - 1) // prev - now
        else:
            assert curr > 0
            retry = (i + 1) * W + max(0, W - ((L - c + 1) * W - 1) // curr) - now
        rep["retry"] = retry
        # A denied request changes no state (3.3): the roll-forward is not stored either.
        return False, state, rep


class Policy:
    def __init__(self, name, specs):
        self.name = name
        self.rules = [Rule(s) for s in specs]
        assert 1 <= len(self.rules) <= 4


def route_matches(prefix, path):
    # 1: the path itself, or the path followed by '/' or '?' and anything after.
    if not path.startswith(prefix):
        return False
    rest = path[len(prefix):]
    return rest == "" or rest[0] in "/?"




def headers_of(rule, rep, wall):
    return {
        "X-RateLimit-Limit": str(rep["limit"]),
        "X-RateLimit-Remaining": str(rep["remaining"]),
        "X-RateLimit-Reset": str(ceil_div(wall + rep["reset"], NS_PER_S)),
    }


class Limiter:
    def __init__(self, config):
        cfg = dict(DEFAULT_CONFIG)
        cfg.update(config)
        self.policies = {name: Policy(name, specs) for name, specs in cfg["policies"].items()}
        self.routes = [(r["prefix"], r["policy"]) for r in cfg["routes"]]
        self.default = cfg["default_policy"]
        self.capacity = cfg["capacity"]
        for _, p in self.routes:
            assert p in self.policies, p
        assert self.default in self.policies
        self.table = {}

    def policy_for(self, path):
        for prefix, name in self.routes:
            if route_matches(prefix, path):
                return self.policies[name]
        return self.policies[self.default]

    def request(self, t_ms, key, path, cost):
        pol = self.policy_for(path)
        c = cost
        if c == 0 or any(c > r.capacity for r in pol.rules):
            return {"error": "invalid_cost"}
        now = wall = t_ms * NS_PER_MS
        results = []
        for idx, r in enumerate(pol.rules):
            cell = (key, pol.name, idx)
            st = self.table.get(cell)
            if st is None:
                st = r.fresh()
            results.append((idx, r, cell) + r.decide(st, now, c))
        allowed = all(res[3] for res in results)
        if allowed:
            for idx, r, cell, _, new, _ in results:
                self.table[cell] = new
            # fewest remaining; ties: longest period, then earlier rule
            best = min(results, key=lambda x: (x[5]["remaining"], -x[1].P, x[0]))
            h = headers_of(best[1], best[5], wall)
            return {"allowed": True, "status": 200, "policy": pol.name,
                    "headers": h, "body": None}
        denying = [x for x in results if not x[3]]
        # largest retry; ties: longest period, then earlier rule
        best = min(denying, key=lambda x: (-x[5]["retry"], -x[1].P, x[0]))
        max_retry = max(x[5]["retry"] for x in denying)
        ras = max(1, ceil_div(max_retry, NS_PER_S))
        h = headers_of(best[1], best[5], wall)
        h["Retry-After"] = str(ras)
        return {"allowed": False, "status": 429, "policy": pol.name,
                "headers": h, "body": BODY % ras}


def main(argv):
    if len(argv) != 2:
        print("usage: model.py TRACE", file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as f:
        lines = [json.loads(l) for l in f if l.strip()]
    config = {}
    if lines and "config" in lines[0]:
        config = lines[0]["config"]
        lines = lines[1:]
    lim = Limiter(config)
    cells = set()
    for o in lines:
        pol = lim.policy_for(o["route"])
        for idx in range(len(pol.rules)):
            cells.add((o["key"], pol.name, idx))
    if len(cells) > lim.capacity:
        print("model.py: trace may fill the table (capacity %d < %d cells): not modelled"
              % (lim.capacity, len(cells)), file=sys.stderr)
        return 3
    out = []
    for o in lines:
        ans = lim.request(int(o["t_ms"]), o["key"], o["route"], int(o.get("cost", 1)))
        out.append(json.dumps(ans, separators=(",", ":"), ensure_ascii=False))
    sys.stdout.write("\n".join(out) + ("\n" if out else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
