//! Policies (1 to 4 rules), routes, and the limiter's configuration.

use core::fmt;

use heapless::{String, Vec};

use crate::rule::{Rule, RuleError, NS_PER_MS};

/// The most rules one policy may have.
pub const MAX_RULES: usize = 4;
/// The most policies one configuration may have.
pub const MAX_POLICIES: usize = 16;
/// The most routes one configuration may have.
pub const MAX_ROUTES: usize = 16;
/// The longest policy name, in bytes.
pub const MAX_NAME_LEN: usize = 32;
/// The longest route prefix, in bytes.
pub const MAX_PREFIX_LEN: usize = 128;

/// A policy's index in its [`Config`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyId(pub(crate) u8);

impl PolicyId {
    /// The index in [`Config::policies`].
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

/// A named, ordered list of 1 to [`MAX_RULES`] rules; a request is admitted iff every
/// rule admits it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    name: String<MAX_NAME_LEN>,
    rules: Vec<Rule, MAX_RULES>,
    /// The smallest capacity of the rules, kept: every check compares its cost with it.
    max_cost: u64,
}

impl Policy {
    /// A policy named `name` with `rules`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Name`] when the name is empty, longer than [`MAX_NAME_LEN`] bytes,
    /// or holds anything but printable ASCII other than `"` and `\` (it is printed in
    /// the IETF headers); [`ConfigError::RuleCount`] for 0 or more than [`MAX_RULES`]
    /// rules.
    pub fn new(name: &str, rules: &[Rule]) -> Result<Policy, ConfigError> {
        let valid_name = !name.is_empty()
            && name.len() <= MAX_NAME_LEN
            && name
                .bytes()
                .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\');
        if !valid_name {
            return Err(ConfigError::Name);
        }
        if rules.is_empty() || rules.len() > MAX_RULES {
            return Err(ConfigError::RuleCount);
        }
        let mut stored_name = String::new();
        stored_name.push_str(name).map_err(|_| ConfigError::Name)?;
        let stored_rules = Vec::from_slice(rules).map_err(|_| ConfigError::RuleCount)?;
        Ok(Policy {
            name: stored_name,
            rules: stored_rules,
            max_cost: rules.iter().map(Rule::capacity).min().unwrap_or(0),
        })
    }

    /// The policy's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The rules, in order.
    #[inline]
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The largest cost this policy accepts: the smallest capacity of its rules.
    #[inline]
    pub fn max_cost(&self) -> u64 {
        self.max_cost
    }
}

/// A route: requests whose path starts with `prefix` on a `/` or `?` boundary use the
/// policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    prefix: String<MAX_PREFIX_LEN>,
    policy: PolicyId,
}

impl Route {
    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The policy it names.
    pub fn policy(&self) -> PolicyId {
        self.policy
    }

    /// Whether `path` is the prefix itself, or the prefix followed by `/` or `?` and
    /// anything (case-sensitive, SEMANTICS.md 1).
    #[inline]
    pub fn matches(&self, path: &str) -> bool {
        let prefix = self.prefix.as_bytes();
        let path = path.as_bytes();
        // Prefixes mostly share their start (`/v1/`): comparing the last byte first turns
        // most misses away without a call to `memcmp`.
        let last_agrees = match prefix.split_last() {
            Some((last, _)) => path.get(prefix.len() - 1) == Some(last),
            None => true,
        };
        last_agrees
            && path.starts_with(prefix)
            && matches!(path.get(prefix.len()), None | Some(b'/') | Some(b'?'))
    }
}

/// Why a configuration was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// A rule's parameters are out of range.
    Rule(RuleError),
    /// A policy name is empty, too long, or has characters outside printable ASCII
    /// (or `"` / `\`).
    Name,
    /// A policy has no rules or more than [`MAX_RULES`].
    RuleCount,
    /// More than [`MAX_POLICIES`] policies, or none.
    PolicyCount,
    /// Two policies have the same name.
    DuplicatePolicy,
    /// More than [`MAX_ROUTES`] routes.
    RouteCount,
    /// A route prefix is empty or longer than [`MAX_PREFIX_LEN`] bytes.
    Prefix,
    /// A route or the default names a policy that does not exist.
    UnknownPolicy,
}

impl From<RuleError> for ConfigError {
    fn from(e: RuleError) -> Self {
        ConfigError::Rule(e)
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Rule(e) => fmt::Display::fmt(e, f),
            ConfigError::Name => f.write_str("must be 1 to 32 bytes of printable ASCII without '\"' or '\\'"),
            ConfigError::RuleCount => f.write_str("must hold 1 to 4 rules"),
            ConfigError::PolicyCount => f.write_str("must hold 1 to 16 policies"),
            ConfigError::DuplicatePolicy => f.write_str("names a policy twice"),
            ConfigError::RouteCount => f.write_str("must hold at most 16 routes"),
            ConfigError::Prefix => f.write_str("must be 1 to 128 bytes"),
            ConfigError::UnknownPolicy => f.write_str("names a policy that is not defined"),
        }
    }
}

/// Policies, routes and the default policy: everything but the table.
///
/// Plain data without pointers: the same config (and the same seed) gives the same
/// fingerprints in every process, which a shared table relies on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    policies: Vec<Policy, MAX_POLICIES>,
    routes: Vec<Route, MAX_ROUTES>,
    default_policy: PolicyId,
}

/// One rule of the documented product policy, as data (SEMANTICS.md 1).
#[derive(Clone, Copy, Debug)]
pub struct RuleSpec {
    /// The algorithm.
    pub algorithm: crate::rule::Algorithm,
    /// The limit.
    pub limit: u64,
    /// The period in milliseconds.
    pub period_ms: u64,
    /// The GCRA burst (equal to `limit` for windows).
    pub burst: u64,
}

impl RuleSpec {
    /// The rule this spec describes.
    ///
    /// # Errors
    ///
    /// As [`Rule::gcra`] and [`Rule::window`].
    pub fn build(&self) -> Result<Rule, RuleError> {
        let period_ns = self.period_ms.checked_mul(NS_PER_MS).ok_or(RuleError::Period)?;
        match self.algorithm {
            crate::rule::Algorithm::Gcra => Rule::gcra(self.limit, period_ns, self.burst),
            crate::rule::Algorithm::Window => Rule::window(self.limit, period_ns),
        }
    }
}

const fn window(limit: u64, period_ms: u64) -> RuleSpec {
    RuleSpec {
        algorithm: crate::rule::Algorithm::Window,
        limit,
        period_ms,
        burst: limit,
    }
}

/// The documented product policy: `(name, rules)` of `standard`, `messaging` and
/// `media` (SEMANTICS.md 1).
pub const DOCUMENTED_POLICIES: [(&str, &[RuleSpec]); 3] = [
    ("standard", &[window(120, 60_000)]),
    (
        "messaging",
        &[
            window(300, 60_000),
            RuleSpec {
                algorithm: crate::rule::Algorithm::Gcra,
                limit: 5,
                period_ms: 1_000,
                burst: 5,
            },
        ],
    ),
    ("media", &[window(30, 60_000)]),
];

/// The documented route table: `(prefix, policy name)`, tried in order.
pub const DOCUMENTED_ROUTES: [(&str, &str); 2] = [("/v1/messages", "messaging"), ("/v1/media", "media")];

/// The documented default policy.
pub const DOCUMENTED_DEFAULT_POLICY: &str = "standard";

impl Config {
    /// A configuration of `policies` with no routes, whose default is the first policy.
    ///
    /// # Errors
    ///
    /// [`ConfigError::PolicyCount`] for none or more than [`MAX_POLICIES`];
    /// [`ConfigError::DuplicatePolicy`] when two share a name.
    pub fn new(policies: &[Policy]) -> Result<Config, ConfigError> {
        if policies.is_empty() || policies.len() > MAX_POLICIES {
            return Err(ConfigError::PolicyCount);
        }
        for (i, p) in policies.iter().enumerate() {
            if policies[..i].iter().any(|q| q.name == p.name) {
                return Err(ConfigError::DuplicatePolicy);
            }
        }
        Ok(Config {
            policies: Vec::from_slice(policies).map_err(|_| ConfigError::PolicyCount)?,
            routes: Vec::new(),
            default_policy: PolicyId(0),
        })
    }

    /// The documented product policy and routes (SEMANTICS.md 1).
    pub fn documented() -> Config {
        let mut policies: Vec<Policy, MAX_POLICIES> = Vec::new();
        for (name, specs) in DOCUMENTED_POLICIES {
            let mut rules: Vec<Rule, MAX_RULES> = Vec::new();
            for spec in specs {
                // The documented rules are in range: a failure here is a bug in the constants.
                let _ = rules.push(spec.build().unwrap_or_else(|_| unreachable!()));
            }
            let _ = policies.push(Policy::new(name, &rules).unwrap_or_else(|_| unreachable!()));
        }
        let mut config = Config {
            policies,
            routes: Vec::new(),
            default_policy: PolicyId(0),
        };
        for (prefix, policy) in DOCUMENTED_ROUTES {
            let _ = config.add_route(prefix, policy);
        }
        config
    }

    /// Appends a route: paths under `prefix` use the policy named `policy`. Routes are
    /// tried in the order they were added; the first match wins.
    ///
    /// # Errors
    ///
    /// [`ConfigError::UnknownPolicy`], [`ConfigError::Prefix`] or
    /// [`ConfigError::RouteCount`].
    pub fn add_route(&mut self, prefix: &str, policy: &str) -> Result<(), ConfigError> {
        let policy = self.policy_id(policy).ok_or(ConfigError::UnknownPolicy)?;
        if prefix.is_empty() || prefix.len() > MAX_PREFIX_LEN {
            return Err(ConfigError::Prefix);
        }
        let mut stored = String::new();
        stored.push_str(prefix).map_err(|_| ConfigError::Prefix)?;
        self.routes
            .push(Route {
                prefix: stored,
                policy,
            })
            .map_err(|_| ConfigError::RouteCount)
    }

    /// Removes every route.
    pub fn clear_routes(&mut self) {
        self.routes.clear();
    }

    /// Sets the policy used when no route matches.
    ///
    /// # Errors
    ///
    /// [`ConfigError::UnknownPolicy`].
    pub fn set_default_policy(&mut self, policy: &str) -> Result<(), ConfigError> {
        self.default_policy = self.policy_id(policy).ok_or(ConfigError::UnknownPolicy)?;
        Ok(())
    }

    /// The policies, in order.
    #[inline]
    pub fn policies(&self) -> &[Policy] {
        &self.policies
    }

    /// The routes, in order.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The policy used when no route matches.
    pub fn default_policy(&self) -> PolicyId {
        self.default_policy
    }

    /// The policy named `name`.
    pub fn policy_id(&self, name: &str) -> Option<PolicyId> {
        self.policies
            .iter()
            .position(|p| p.name == name)
            .map(|i| PolicyId(i as u8))
    }

    /// The id of the policy at `index` in [`Config::policies`].
    pub fn policy_id_at(&self, index: usize) -> Option<PolicyId> {
        (index < self.policies.len()).then_some(PolicyId(index as u8))
    }

    /// The policy with this id.
    ///
    /// # Panics
    ///
    /// If `id` is not from this config.
    #[inline]
    pub fn policy(&self, id: PolicyId) -> &Policy {
        &self.policies[id.index()]
    }

    /// The policy for a request path: the first matching route's, else the default.
    #[inline]
    pub fn route(&self, path: &str) -> PolicyId {
        self.routes
            .iter()
            .find(|r| r.matches(path))
            .map_or(self.default_policy, |r| r.policy)
    }

    /// A 64-bit digest of every policy, rule and route, for checking that processes
    /// sharing one table agree on the configuration.
    pub fn fingerprint(&self) -> u64 {
        use core::hash::{Hash, Hasher};
        let mut h = siphasher::sip::SipHasher13::new_with_keys(0x6173726c, 0x636f6e66);
        for p in &self.policies {
            p.name.as_bytes().hash(&mut h);
            p.rules.as_slice().hash(&mut h);
        }
        for r in &self.routes {
            r.prefix.as_bytes().hash(&mut h);
            r.policy.hash(&mut h);
        }
        self.default_policy.hash(&mut h);
        h.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rule::{Rule, NS_PER_S};

    fn one_rule(name: &str) -> Policy {
        Policy::new(name, &[Rule::window(10, NS_PER_S).unwrap()]).unwrap()
    }

    #[test]
    fn documented_routes_match_on_a_slash_or_query_boundary() {
        let c = Config::documented();
        let name = |path: &str| c.policy(c.route(path)).name();
        assert_eq!(name("/v1/messages"), "messaging");
        assert_eq!(name("/v1/messages/42"), "messaging");
        assert_eq!(name("/v1/messages?x=1"), "messaging");
        assert_eq!(name("/v1/messages/"), "messaging");
        assert_eq!(name("/v1/messagesX"), "standard");
        assert_eq!(name("/v1/message"), "standard");
        assert_eq!(name("/V1/messages"), "standard");
        assert_eq!(name("/v1/Messages"), "standard");
        assert_eq!(name("/v1/media"), "media");
        assert_eq!(name("/v1/mediafiles"), "standard");
        assert_eq!(name("/v1/media?x"), "media");
        assert_eq!(name(""), "standard");
        assert_eq!(name("/"), "standard");
        assert_eq!(name("v1/messages"), "standard");
    }

    #[test]
    fn documented_policies_have_the_documented_rules() {
        let c = Config::documented();
        type Figures<'a> = std::vec::Vec<(&'a str, std::vec::Vec<(u64, u64, u64)>)>;
        let figures: Figures<'_> = c
            .policies()
            .iter()
            .map(|p| {
                (
                    p.name(),
                    p.rules()
                        .iter()
                        .map(|r| (r.limit(), r.period_ns(), r.burst()))
                        .collect(),
                )
            })
            .collect();
        assert_eq!(
            figures,
            [
                ("standard", std::vec![(120, 60 * NS_PER_S, 120)]),
                (
                    "messaging",
                    std::vec![(300, 60 * NS_PER_S, 300), (5, NS_PER_S, 5)]
                ),
                ("media", std::vec![(30, 60 * NS_PER_S, 30)]),
            ]
        );
        assert_eq!(c.policy(c.default_policy()).name(), "standard");
        assert_eq!(c.policy(c.policy_id("messaging").unwrap()).max_cost(), 5);
    }

    extern crate std;

    #[test]
    fn first_route_wins() {
        let mut c = Config::new(&[one_rule("a"), one_rule("ab"), one_rule("d")]).unwrap();
        c.set_default_policy("d").unwrap();
        c.add_route("/a", "a").unwrap();
        c.add_route("/a/b", "ab").unwrap();
        assert_eq!(c.route("/a/b"), c.policy_id("a").unwrap());
        assert_eq!(c.route("/a/b/c"), c.policy_id("a").unwrap());
        assert_eq!(c.route("/ab"), c.policy_id("d").unwrap());
        c.clear_routes();
        c.add_route("/a/b", "ab").unwrap();
        c.add_route("/a", "a").unwrap();
        assert_eq!(c.route("/a/b/c"), c.policy_id("ab").unwrap());
        assert_eq!(c.route("/a/c"), c.policy_id("a").unwrap());
        // A prefix ending in '/' matches only below it.
        c.add_route("/z/", "ab").unwrap();
        assert_eq!(c.route("/z/"), c.policy_id("ab").unwrap());
        assert_eq!(c.route("/z"), c.policy_id("d").unwrap());
    }

    #[test]
    fn config_errors() {
        let r = Rule::window(1, NS_PER_S).unwrap();
        assert_eq!(Policy::new("", &[r]), Err(ConfigError::Name));
        assert_eq!(Policy::new("a\"b", &[r]), Err(ConfigError::Name));
        assert_eq!(Policy::new("a\\b", &[r]), Err(ConfigError::Name));
        assert_eq!(Policy::new("tab\t", &[r]), Err(ConfigError::Name));
        assert_eq!(Policy::new("é", &[r]), Err(ConfigError::Name));
        assert_eq!(Policy::new(&"x".repeat(33), &[r]), Err(ConfigError::Name));
        assert!(Policy::new(&"x".repeat(32), &[r]).is_ok());
        assert_eq!(Policy::new("p", &[]), Err(ConfigError::RuleCount));
        assert_eq!(Policy::new("p", &[r; 5]), Err(ConfigError::RuleCount));
        assert!(Policy::new("p", &[r; 4]).is_ok());
        assert_eq!(Config::new(&[]), Err(ConfigError::PolicyCount));
        assert_eq!(
            Config::new(&[one_rule("a"), one_rule("a")]),
            Err(ConfigError::DuplicatePolicy)
        );
        let many: std::vec::Vec<Policy> = (0..17).map(|i| one_rule(&std::format!("p{i}"))).collect();
        assert_eq!(Config::new(&many), Err(ConfigError::PolicyCount));
        assert!(Config::new(&many[..16]).is_ok());
        let mut c = Config::new(&[one_rule("a")]).unwrap();
        assert_eq!(c.add_route("/x", "nope"), Err(ConfigError::UnknownPolicy));
        assert_eq!(c.add_route("", "a"), Err(ConfigError::Prefix));
        assert_eq!(c.add_route(&"/".repeat(129), "a"), Err(ConfigError::Prefix));
        assert_eq!(c.set_default_policy("nope"), Err(ConfigError::UnknownPolicy));
        for i in 0..16 {
            c.add_route(&std::format!("/r{i}"), "a").unwrap();
        }
        assert_eq!(c.add_route("/r16", "a"), Err(ConfigError::RouteCount));
        assert_eq!(c.routes().len(), 16);
    }

    #[test]
    fn fingerprint_tells_configs_apart() {
        let a = Config::documented();
        let mut b = Config::documented();
        assert_eq!(a.fingerprint(), b.fingerprint());
        b.clear_routes();
        assert_ne!(a.fingerprint(), b.fingerprint());
        let mut c = Config::documented();
        c.set_default_policy("media").unwrap();
        assert_ne!(a.fingerprint(), c.fingerprint());
    }
}
