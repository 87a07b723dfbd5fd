//! The compiled policy set: candidates indexed by resource kind and action, so finding the candidates of
//! a request costs two hash lookups however many rules there are.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::model::{
    Actions, Candidate, Effect, ErrorFormat, KindDecl, Kinds, Modes, NamedPolicy, Revocations,
    Strategy,
};
use super::problem::LoadError;
use super::routes::RouteTable;
use super::source::Source;

/// Candidate ids for one kind, by action, in evaluation order.
#[derive(Debug, Default)]
struct ActionIndex {
    by_action: HashMap<String, Box<[u32]>>,
    /// For actions no candidate of this kind names: those covering every action.
    other_actions: Box<[u32]>,
}

impl ActionIndex {
    fn get(&self, action: &str) -> &[u32] {
        self.by_action.get(action).unwrap_or(&self.other_actions)
    }
}

/// A validated, indexed, immutable policy set and the content hash that identifies it.
#[derive(Debug)]
pub struct PolicySet {
    revision: String,
    strategy: Strategy,
    modes: Modes,
    route_errors: ErrorFormat,
    candidates: Vec<Candidate>,
    policies: Vec<NamedPolicy>,
    kinds: BTreeMap<String, KindDecl>,
    index: HashMap<String, ActionIndex>,
    /// Candidates for kinds that no candidate names specifically.
    any_kind: ActionIndex,
    known_actions: HashMap<String, Vec<String>>,
    /// The vocabulary of a kind not declared: the actions rules over every kind (`*`) name.
    any_kind_actions: Vec<String>,
    files: Vec<(String, String)>,
    revocations: Revocations,
    routes: RouteTable,
    /// What the compiler found odd but not wrong (a role used once and spelt like another).
    warnings: Vec<LoadError>,
    /// The roles (channel roles included) and groups rules, chat policies and named policies name.
    roles_named: BTreeSet<String>,
    groups_named: BTreeSet<String>,
}

/// What the revision hashes: everything that can change a decision.
#[derive(Serialize)]
struct Hashed<'a> {
    strategy: Strategy,
    modes: Modes,
    #[serde(skip_serializing_if = "ErrorFormat::is_default")]
    route_errors: ErrorFormat,
    candidates: &'a [Candidate],
    policies: &'a [NamedPolicy],
    kinds: &'a BTreeMap<String, KindDecl>,
    revocations: &'a Revocations,
    routes: &'a RouteTable,
}

/// What the compiler hands over to build a set.
pub(super) struct Parts {
    pub strategy: Strategy,
    pub modes: Modes,
    pub route_errors: ErrorFormat,
    pub candidates: Vec<Candidate>,
    pub policies: Vec<NamedPolicy>,
    pub kinds: BTreeMap<String, KindDecl>,
    pub revocations: Revocations,
    pub routes: RouteTable,
}

impl PolicySet {
    pub(super) fn new(parts: Parts, sources: &[Source]) -> PolicySet {
        let Parts {
            strategy,
            modes,
            route_errors,
            candidates,
            policies,
            kinds,
            revocations,
            routes,
        } = parts;
        let revision = revision_of(&Hashed {
            strategy,
            modes,
            route_errors,
            candidates: &candidates,
            policies: &policies,
            kinds: &kinds,
            revocations: &revocations,
            routes: &routes,
        });
        let (index, any_kind) = build_index(&candidates);
        let known_actions = known_actions(&kinds);
        let any_kind_actions = any_kind_actions(&candidates);
        let files = sources
            .iter()
            .map(|s| (s.path.clone(), hex(&Sha256::digest(s.text.as_bytes()), 64)))
            .collect();
        PolicySet {
            revision,
            strategy,
            modes,
            route_errors,
            candidates,
            policies,
            kinds,
            index,
            any_kind,
            known_actions,
            any_kind_actions,
            warnings: Vec::new(),
            roles_named: BTreeSet::new(),
            groups_named: BTreeSet::new(),
            files,
            revocations,
            routes,
        }
    }

    /// Whether this set revokes the token `principal` came from. Server tokens are exempt: Stream's
    /// SDKs mint them without `iat`, and revoking them would lock the backend out.
    ///
    /// A scope token is revoked with every user it acts for: its `user_id` claim, the users of its
    /// scope's `user_id` list, and the owners of the feeds in its `feed_id` list (a compact feed id is
    /// read against every declared feed group, and revoked if any reading names a revoked user).
    pub fn revokes(&self, principal: &crate::principal::Principal) -> bool {
        if principal.kind == crate::principal::PrincipalKind::Server {
            return false;
        }
        let revoked = |user: &str| self.revocations.revokes(user, principal.issued_at);
        if revoked(&principal.user_id) {
            return true;
        }
        let Some(scope) = &principal.scope else {
            return false;
        };
        if self.revocations.users.is_empty() {
            return false;
        }
        let users = scope.user_id.iter().flat_map(|l| l.values());
        if users.into_iter().any(|u| revoked(u)) {
            return true;
        }
        scope
            .feed_id
            .iter()
            .flat_map(|l| l.values())
            .any(|feed| match feed.split_once(':') {
                Some((_, user)) => revoked(user),
                None => self
                    .kinds
                    .values()
                    .flat_map(|decl| decl.split_compact_feed(feed))
                    .any(|(_, user)| revoked(user)),
            })
    }

    /// The load's warnings: problems that did not stop it, for `validate` to print and the store to log.
    pub fn warnings(&self) -> &[LoadError] {
        &self.warnings
    }

    pub(super) fn set_warnings(&mut self, warnings: Vec<LoadError>) {
        self.warnings = warnings;
    }

    /// The roles (channel roles included) the set's conditions name, so that a test principal holding
    /// one the set never looks at can be pointed out.
    pub fn roles_named(&self) -> &BTreeSet<String> {
        &self.roles_named
    }

    /// The groups the set's conditions name.
    pub fn groups_named(&self) -> &BTreeSet<String> {
        &self.groups_named
    }

    pub(super) fn set_names(&mut self, roles: BTreeSet<String>, groups: BTreeSet<String>) {
        self.roles_named = roles;
        self.groups_named = groups;
    }

    /// The enforcement modes.
    pub fn modes(&self) -> Modes {
        self.modes
    }

    /// The body a denial through the route table carries.
    pub fn route_errors(&self) -> ErrorFormat {
        self.route_errors
    }

    /// The HTTP route table (empty when the set has no routes).
    pub fn routes(&self) -> &RouteTable {
        &self.routes
    }

    /// The tokens this set revokes.
    pub fn revocations(&self) -> &Revocations {
        &self.revocations
    }

    /// The content hash of the compiled set: equal sets have equal revisions.
    pub fn revision(&self) -> &str {
        &self.revision
    }

    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    pub fn candidates(&self) -> &[Candidate] {
        &self.candidates
    }

    pub fn policy(&self, id: usize) -> Option<&NamedPolicy> {
        self.policies.get(id)
    }

    pub fn kind(&self, kind: &str) -> Option<&KindDecl> {
        self.kinds.get(kind)
    }

    /// The files the set was compiled from, with the hash of each one's content.
    pub fn files(&self) -> &[(String, String)] {
        &self.files
    }

    /// The ids of the candidates for `action` on `kind`, by descending priority, denies first at equal
    /// priority, then in declaration order.
    pub fn candidate_ids(&self, kind: &str, action: &str) -> &[u32] {
        self.index.get(kind).unwrap_or(&self.any_kind).get(action)
    }

    pub fn candidate(&self, id: u32) -> Option<&Candidate> {
        usize::try_from(id)
            .ok()
            .and_then(|i| self.candidates.get(i))
    }

    /// Every action `kind` declares under `resources`, sorted; for a kind not declared, which only
    /// rules over every kind (`resource: "*"`) can cover, the actions those rules name. This is the
    /// kind's whole vocabulary: a rule for `actions: "*"` covers these and no other, and a request for
    /// any other action is denied. The compiler refuses a rule that names an action its kinds do not
    /// declare, so a declared kind's vocabulary is exactly what its declaration says.
    pub fn known_actions(&self, kind: &str) -> &[String] {
        self.known_actions
            .get(kind)
            .unwrap_or(&self.any_kind_actions)
    }

    /// Whether the set has no rules, policies, permissions or routes: it denies every request but
    /// those of server tokens.
    pub fn is_empty(&self) -> bool {
        self.candidates.is_empty() && self.routes.is_empty()
    }

    /// A kind (or `*` for rules over every kind) with more than `limit` actions, if any.
    pub fn kind_with_most_actions(&self, limit: usize) -> Option<&str> {
        if self.any_kind_actions.len() > limit {
            return Some("*");
        }
        self.known_actions
            .iter()
            .find(|(_, actions)| actions.len() > limit)
            .map(|(kind, _)| kind.as_str())
    }

    /// Whether `action` is in the vocabulary of `kind`, exactly (case and spaces count).
    pub fn knows_action(&self, kind: &str, action: &str) -> bool {
        self.known_actions(kind)
            .binary_search_by(|known| known.as_str().cmp(action))
            .is_ok()
    }
}

fn hex(bytes: &[u8], chars: usize) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
        .chars()
        .take(chars)
        .collect()
}

fn revision_of(hashed: &Hashed<'_>) -> String {
    // Serializing plain data cannot fail; an empty hash input would still give a stable revision.
    let canonical = serde_json::to_vec(hashed).unwrap_or_default();
    hex(&Sha256::digest(&canonical), 16)
}

/// Evaluation order: higher priority first; at equal priority denies, then permissions, then allows;
/// then declaration order.
fn order(candidates: &[Candidate], ids: &mut Vec<u32>) {
    ids.sort_unstable();
    ids.dedup();
    ids.sort_by_key(|&id| {
        let c = usize::try_from(id).ok().and_then(|i| candidates.get(i));
        let priority = c.map(|c| c.priority).unwrap_or(i32::MIN);
        let effect_rank = match c.and_then(Candidate::fixed_effect) {
            Some(Effect::Deny) => 0,
            None => 1,
            Some(Effect::Allow) => 2,
        };
        (std::cmp::Reverse(priority), effect_rank, id)
    });
}

#[derive(Default)]
struct Buckets {
    by_action: BTreeMap<String, Vec<u32>>,
    any_action: Vec<u32>,
}

impl Buckets {
    fn add(&mut self, actions: &Actions, id: u32) {
        match actions {
            Actions::Any => self.any_action.push(id),
            Actions::Only(list) => {
                for action in list {
                    self.by_action.entry(action.clone()).or_default().push(id);
                }
            }
        }
    }
}

fn build_index(candidates: &[Candidate]) -> (HashMap<String, ActionIndex>, ActionIndex) {
    let mut per_kind: BTreeMap<String, Buckets> = BTreeMap::new();
    let mut wildcard = Buckets::default();
    for (i, candidate) in candidates.iter().enumerate() {
        let Ok(id) = u32::try_from(i) else { continue };
        match &candidate.kinds {
            Kinds::Any => wildcard.add(&candidate.actions, id),
            Kinds::Only(kinds) => {
                for kind in kinds {
                    per_kind
                        .entry(kind.clone())
                        .or_default()
                        .add(&candidate.actions, id);
                }
            }
        }
    }
    let finish = |buckets: Option<&Buckets>| -> ActionIndex {
        let empty = Buckets::default();
        let own = buckets.unwrap_or(&empty);
        let actions: BTreeSet<&String> = own
            .by_action
            .keys()
            .chain(wildcard.by_action.keys())
            .collect();
        let mut other: Vec<u32> = own
            .any_action
            .iter()
            .chain(&wildcard.any_action)
            .copied()
            .collect();
        order(candidates, &mut other);
        let by_action = actions
            .into_iter()
            .map(|action| {
                let mut ids: Vec<u32> = [&own.by_action, &wildcard.by_action]
                    .into_iter()
                    .filter_map(|m| m.get(action))
                    .flatten()
                    .chain(&other)
                    .copied()
                    .collect();
                order(candidates, &mut ids);
                (action.clone(), ids.into_boxed_slice())
            })
            .collect();
        ActionIndex {
            by_action,
            other_actions: other.into_boxed_slice(),
        }
    };
    let index = per_kind
        .iter()
        .map(|(kind, buckets)| (kind.clone(), finish(Some(buckets))))
        .collect();
    (index, finish(None))
}

fn known_actions(kinds: &BTreeMap<String, KindDecl>) -> HashMap<String, Vec<String>> {
    kinds
        .iter()
        .map(|(kind, decl)| {
            let actions: BTreeSet<String> = decl.actions.iter().cloned().collect();
            (kind.clone(), actions.into_iter().collect())
        })
        .collect()
}

fn any_kind_actions(candidates: &[Candidate]) -> Vec<String> {
    let mut actions: BTreeSet<String> = BTreeSet::new();
    for candidate in candidates {
        if let (Kinds::Any, Actions::Only(named)) = (&candidate.kinds, &candidate.actions) {
            actions.extend(named.iter().cloned());
        }
    }
    actions.into_iter().collect()
}
