#!/usr/bin/env python3
"""Seeded random trace generator for the conformance model.

Usage: gen.py SEED [N_REQUESTS] > trace.jsonl

Only input FORMAT.md and SEMANTICS.md define: a config line (all fields optional, defaults of
SEMANTICS.md 1), then requests {t_ms, key, route, cost?}. Corners exercised: GCRA and window
rules, 1-4 rule policies mixing both, burst != limit, costs 1..capacity and invalid costs
(0, capacity+1), several keys (empty and non-ASCII included), prefix routing (exact, '/', '?',
no-boundary, case), timestamps equal / +1 ms / tiny / huge jumps / backwards, window boundaries
k*P, k*P-1, k*P+1, periods 1 ms .. 1 year, limits 1 .. 10^9, second boundaries (Reset and
Retry-After rounding), T not a whole number of ms, long idle gaps, fresh keys at t = 0.
The capacity is always large (never filled).
"""
import json
import random
import sys

YEAR_MS = 365 * 86400 * 1000
EPOCH_NOW = 1780423178274  # around the shared traces' times
MAX_T_MS = 4_000_000_000_000  # usual ceiling
U64_T_MS = (2**64 - 1) // 1_000_000  # the largest t_ms whose nanoseconds fit a u64

PERIODS = [1, 2, 3, 7, 10, 999, 1000, 1001, 1500, 3000, 7000, 60000, 3_600_000,
           86_400_000, YEAR_MS]
LIMITS = [1, 1, 2, 3, 5, 7, 10, 30, 60, 120, 300, 1000, 999_983, 10**6, 10**9]


# SEMANTICS.md sets no upper bounds (only L >= 1, P > 0). The implementation rejects configs
# outside the ranges of README.md "Ranges" (limit/burst <= 1e9, GCRA burst*ceil(P/L) <= 2^62
# ns, window limit <= Rule::max_window_limit(period)); the generator stays inside them so that
# decisions can be compared (see repro/00-ranges-not-in-contract.md).
MAX_LIMIT = 10**9


def max_window_limit(period_ms):
    # README: 131,071 for a minute, 16,383 for a second, 511 for a millisecond. This formula
    # (found by probing the replay, not from the source) gives the largest accepted limit for
    # 16 periods from 1 ms to 100 years; a rejected config would show up in diff.sh as a
    # replay failure.
    idx_bits = ((2**64 - 1) // (period_ms * 10**6)).bit_length()
    return min(MAX_LIMIT, 2 ** ((63 - idx_bits) // 2) - 1)


def gen_rule(r, algo=None):
    algo = algo or r.choice(["gcra", "window"])
    p = r.choice(PERIODS) if r.random() < 0.8 else r.randint(1, 100_000)
    lim = r.choice(LIMITS) if r.random() < 0.7 else r.randint(1, 50)
    rule = {"algorithm": algo, "limit": lim, "period_ms": p}
    if algo == "window":
        if r.random() < 0.05:
            rule["limit"] = max_window_limit(p)  # also exercise the largest limit
    else:
        x = r.random()
        if x < 0.3:
            pass  # burst defaults to limit
        elif x < 0.6:
            rule["burst"] = lim
        elif x < 0.75:
            rule["burst"] = 1
        else:
            rule["burst"] = r.choice([2, 3, 5, 10, r.randint(1, 40), lim + 1, max(1, lim // 2)])
    return clamp(rule)


def clamp(rule):
    lim, p = rule["limit"], rule["period_ms"]
    if rule["algorithm"] == "window":
        rule["limit"] = min(lim, max_window_limit(p))
    else:
        b = min(rule.get("burst", lim), MAX_LIMIT)
        t = -(-(p * 10**6) // lim)
        while b > 1 and b * t > 2**62:
            b = max(1, b // 1000)
        if b != rule.get("burst", lim):
            rule["burst"] = b
    return rule


def capacity(rule):
    return rule.get("burst", rule["limit"]) if rule["algorithm"] == "gcra" else rule["limit"]


NAMES = ["alpha", "beta", "gamma", "delta", "standard", "messaging", "media", "p_1", "Zeta"]
PREFIXES = ["/a", "/a/b", "/b", "/v1/messages", "/v1/media", "/v1", "/api/x", "/A", "/a-b"]


def gen_config(r):
    mode = r.random()
    if mode < 0.15:
        return None, None  # defaults, no config line
    if mode < 0.30:
        # partial configs: the rest takes the defaults of SEMANTICS.md 1
        cfg = {}
        if r.random() < 0.5:
            cfg["capacity"] = r.choice([65536, 4096, 1 << 20])
        if r.random() < 0.5:
            cfg["default_policy"] = r.choice(["standard", "messaging", "media"])
        if r.random() < 0.5:
            pre = r.sample(["/v1/messages", "/v1/media", "/v1", "/x", "/v1/messages/42"], r.randint(0, 3))
            cfg["routes"] = [{"prefix": p, "policy": r.choice(["standard", "messaging", "media"])} for p in pre]
        return cfg, None
    npol = r.randint(1, 4)
    names = r.sample(NAMES, npol)
    policies = {}
    # "tiny": small limits and periods of a few ms, so that the rules' figures coincide often
    # (ties in remaining and in retry, broken by period then by order: SEMANTICS.md 3.3)
    tiny = r.random() < 0.15
    for n in names:
        nr = r.choice([1, 1, 2, 2, 3, 4])
        style = r.random()
        rules = []
        for k in range(nr):
            if tiny:
                algo = r.choice(["gcra", "window"])
                ru = {"algorithm": algo, "limit": r.randint(1, 4),
                      "period_ms": r.choice([1, 2, 3, 4, 6, 12])}
                if algo == "gcra" and r.random() < 0.5:
                    ru["burst"] = r.randint(1, 4)
                rules.append(ru)
            elif style < 0.25:
                rules.append(gen_rule(r, "gcra"))
            elif style < 0.5:
                rules.append(gen_rule(r, "window"))
            else:
                rules.append(gen_rule(r))
        if r.random() < 0.15 and nr >= 2:
            # two rules with the same period (tie-break by order), or same remaining figures
            rules[1]["period_ms"] = rules[0]["period_ms"]
            if r.random() < 0.5:
                rules[1]["limit"] = rules[0]["limit"]
            clamp(rules[1])
        policies[n] = rules
    nroutes = r.randint(0, 4)
    routes = [{"prefix": p, "policy": r.choice(names)} for p in r.sample(PREFIXES, nroutes)]
    cfg = {"policies": policies, "routes": routes, "default_policy": r.choice(names)}
    if r.random() < 0.7:
        cfg["capacity"] = 65536
    return cfg, policies


DEFAULT_POLICIES = {
    "standard": [{"algorithm": "window", "limit": 120, "period_ms": 60000}],
    "messaging": [{"algorithm": "window", "limit": 300, "period_ms": 60000},
                  {"algorithm": "gcra", "limit": 5, "period_ms": 1000, "burst": 5}],
    "media": [{"algorithm": "window", "limit": 30, "period_ms": 60000}],
}
DEFAULT_ROUTES = [{"prefix": "/v1/messages", "policy": "messaging"},
                  {"prefix": "/v1/media", "policy": "media"}]


def route_matches(prefix, path):
    if not path.startswith(prefix):
        return False
    rest = path[len(prefix):]
    return rest == "" or rest[0] in "/?"


def gen_paths(r, routes):
    prefixes = [x["prefix"] for x in routes] + ["/v1/messages", "/v1/media", "/a", "/status"]
    paths = set()
    for p in prefixes:
        paths.update([p, p + "/", p + "/42", p + "?x=1", p + "?", p + "X", p + "s",
                      p.upper(), p + "/b/c", p[:-1] if len(p) > 1 else p])
    paths.update(["/", "/v1/status", "/v1/messagesX", "/v1/Messages", "/v1/media?y"])
    return sorted(paths)


def gen_trace(seed, nreq=None):
    r = random.Random(seed)
    cfg, policies = gen_config(r)
    pols = policies or DEFAULT_POLICIES
    if cfg is not None and "policies" not in cfg:
        pols = DEFAULT_POLICIES
    routes = (cfg or {}).get("routes", DEFAULT_ROUTES)
    default = (cfg or {}).get("default_policy", "standard")

    def policy_of(path):
        for x in routes:
            if route_matches(x["prefix"], path):
                return x["policy"]
        return default

    paths = gen_paths(r, routes)
    # a few paths used most of the time
    hot = r.sample(paths, min(len(paths), r.randint(1, 4)))
    keys = r.sample(["k1", "k2", "", "ключ", "a\"b\\c", "k3", "\u00e9", "K1", "x" * 40],
                    r.randint(1, 4))
    periods_ms = sorted({ru["period_ms"] for rules in pols.values() for ru in rules})

    # starting time
    x = r.random()
    top = MAX_T_MS
    if x < 0.03:
        top = U64_T_MS                      # the end of the u64 ns clock (SEMANTICS 2: u64)
        t = U64_T_MS - r.choice([0, 1, 1000, 60000, r.randint(0, 10**9)])
    elif x < 0.1:
        t = r.randint(0, 5)                 # fresh keys at t = 0 and tiny epochs
    elif x < 0.4:
        p = r.choice(periods_ms)
        k = EPOCH_NOW // p
        t = k * p + r.choice([-1, 0, 1, -2, 2])
        t = max(0, t)
    elif x < 0.6:
        t = (EPOCH_NOW // 1000) * 1000 + r.choice([0, 1, 999, 998, 500])
    else:
        t = EPOCH_NOW + r.randint(-10**9, 10**9)

    n = nreq or r.randint(20, 160)
    out = []
    if cfg is not None:
        out.append(json.dumps({"config": cfg}, separators=(",", ":"), ensure_ascii=False))
    burst_left = 0
    for _ in range(n):
        # time step
        if burst_left > 0:
            burst_left -= 1
            dt = 0 if r.random() < 0.8 else 1
        else:
            y = r.random()
            if y < 0.15:
                dt = 0
                burst_left = r.randint(0, 12)
            elif y < 0.30:
                dt = r.randint(1, 3)
            elif y < 0.45:
                dt = r.randint(1, 1500)
            elif y < 0.60:
                # hit a window boundary of some period exactly, -1 or +1
                p = r.choice(periods_ms)
                dt = ((t // p) + r.choice([1, 1, 2])) * p + r.choice([-1, 0, 0, 1]) - t
            elif y < 0.67:
                # land on a second boundary (+0/+1/-1 ms): Reset/Retry-After rounding
                dt = ((t // 1000) + r.randint(1, 3)) * 1000 + r.choice([-1, 0, 1]) - t
            elif y < 0.74:
                dt = r.choice([60000, 59999, 60001, 3_600_000, 86_400_000, YEAR_MS,
                               YEAR_MS + 1, 2 * YEAR_MS, r.randint(1, 10**10)])  # idle gaps
            elif y < 0.82:
                dt = -r.choice([1, 2, 10, 500, 999, 1000, 1001, 60000, r.randint(1, 10**6)])
            elif y < 0.86:
                dt = -r.choice([3_600_000, 86_400_000, YEAR_MS])  # the clock goes far back
            else:
                p = r.choice(periods_ms)
                dt = r.choice([p // 2, p // 3, p - 1, p + 1, max(1, p // 7)])
        t = min(max(0, t + dt), top)

        path = r.choice(hot) if r.random() < 0.8 else r.choice(paths)
        key = r.choice(keys)
        req = {"t_ms": t, "key": key, "route": path}
        rules = pols[policy_of(path)]
        cap = min(capacity(ru) for ru in rules)
        z = r.random()
        if z < 0.45:
            pass  # default cost 1
        elif z < 0.60:
            req["cost"] = 1
        elif z < 0.75:
            req["cost"] = r.randint(1, min(cap, 10))
        elif z < 0.83:
            req["cost"] = r.randint(1, cap)
        elif z < 0.90:
            req["cost"] = cap                                   # exactly the capacity
        elif z < 0.95:
            req["cost"] = max(1, cap - r.randint(0, 2))
        elif z < 0.975:
            req["cost"] = 0                                     # invalid
        else:
            req["cost"] = cap + r.choice([1, 1, 5, 10**6])      # invalid: above capacity
        out.append(json.dumps(req, separators=(",", ":"), ensure_ascii=False))
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    seed = int(sys.argv[1])
    nreq = int(sys.argv[2]) if len(sys.argv) > 2 else None
    sys.stdout.write(gen_trace(seed, nreq))
