//! The first pass's items: settings, revocations and resource kinds.

use super::super::file::{self, ResourceDoc, RevocationsDoc, Settings, Spanned};
use super::super::model::{ErrorFormat, KindDecl, Mode, Modes, Operand};
use super::super::pattern::Pattern;
use super::conditions::{has_capture, unknown_capture};
use super::{At, Compiler, MAX_ACTIONS_PER_KIND};

impl Compiler {
    /// The set's strategy and modes; one file only may have settings.
    pub(super) fn settings(&mut self, settings: &Spanned<Settings>, file: usize) {
        let at = At::new(file, settings);
        let (value, value_at) = match &settings.strategy {
            Some(strategy) => (strategy.as_str(), at.of(strategy)),
            None => ("priority", at),
        };
        match (file::strategy(value, true), self.strategy) {
            (_, Some(_)) => self.error(at, "settings may appear in one file only"),
            (Ok(strategy), None) => self.strategy = Some((strategy, file)),
            (Err(e), None) => self.error(value_at, e),
        }
        self.modes(settings, at);
        if let Some(value) = &settings.route_errors {
            match ErrorFormat::parse(value) {
                Ok(format) => self.route_errors = format,
                Err(e) => self.error(at.of(value), e),
            }
        }
    }

    /// The set's enforcement modes; `route_mode` defaults to `mode`.
    fn modes(&mut self, settings: &Settings, at: At) {
        let mut parse = |value: Option<&Spanned<String>>| -> Option<Mode> {
            let value = value?;
            match Mode::parse(value) {
                Ok(mode) => Some(mode),
                Err(e) => {
                    self.error(at.of(value), e);
                    None
                }
            }
        };
        let checks = parse(settings.mode.as_ref()).unwrap_or_default();
        let routes = parse(settings.route_mode.as_ref()).unwrap_or(checks);
        self.modes = Modes { checks, routes };
    }

    pub(super) fn revocations(&mut self, doc: &Spanned<RevocationsDoc>, file: usize) {
        let at = At::new(file, doc);
        if std::mem::replace(&mut self.revocations_seen, true) {
            self.error(at, "revocations may appear in one file only");
            return;
        }
        if let Some(time) = &doc.app_issued_before {
            self.revocations.app_issued_before = self.time(time, at.of(time));
        }
        for (user, time) in &doc.users {
            if let Some(cutoff) = self.time(time, at.of(time)) {
                self.revocations.users.insert(user.clone(), cutoff);
            }
        }
    }

    /// An RFC 3339 time as seconds since the Unix epoch.
    pub(super) fn time(&mut self, value: &str, at: At) -> Option<i64> {
        match humantime::parse_rfc3339_weak(value) {
            Ok(t) => t
                .duration_since(std::time::UNIX_EPOCH)
                .ok()
                .and_then(|d| i64::try_from(d.as_secs()).ok()),
            Err(_) => {
                self.error(at, format!("'{value}' is not an RFC 3339 time"));
                None
            }
        }
    }

    /// A kind with `feed` needs its feed groups, each a non-empty name without ':'.
    pub(super) fn resolve_feed_groups(&mut self) {
        for (kind, groups, at) in std::mem::take(&mut self.feed_groups) {
            let groups = self.values(groups, at);
            if groups
                .iter()
                .any(|g| g.is_empty() || g.contains(':') || g == "*")
            {
                self.error(at, "feed groups are names without ':' (and not '*')");
            }
            if let Some(decl) = self.kinds.get_mut(&kind) {
                decl.feed_groups = groups;
            }
        }
    }

    /// An operand of a kind's declaration (`owner`, `feed`, `channel`), checked against its id
    /// pattern's captures once that is known.
    fn decl_operand(&mut self, text: Option<&Spanned<String>>, at: At) -> Option<Operand> {
        let text = text?;
        match Operand::parse(text) {
            Ok(op) => Some(op),
            Err(e) => {
                self.error(at.of(text), e);
                None
            }
        }
    }

    pub(super) fn kind_decl(&mut self, doc: &ResourceDoc, at: At) -> KindDecl {
        if doc.kind.trim().is_empty() || doc.kind.as_str() == "*" {
            self.error(at, "a resource kind needs a name (and cannot be '*')");
        }
        let owner = self.decl_operand(doc.owner.as_ref(), at);
        let feed = self.decl_operand(doc.feed.as_ref(), at);
        let channel = self.decl_operand(doc.channel.as_ref(), at);
        let id_pattern = doc.id.as_ref().and_then(|p| match Pattern::parse(p) {
            Ok(p) => Some(p),
            Err(e) => {
                self.error(at.of(p), e);
                None
            }
        });
        if doc.actions.len() > MAX_ACTIONS_PER_KIND {
            let message = format!(
                "kind '{}' declares {} actions, more than {MAX_ACTIONS_PER_KIND}",
                doc.kind.as_str(),
                doc.actions.len()
            );
            self.error(at.of(&doc.actions), message);
        }
        match &doc.feed_groups {
            Some(groups) => {
                let entry = (doc.kind.to_string(), (**groups).clone(), at.of(groups));
                self.feed_groups.push(entry);
            }
            None => {
                if let Some(feed) = &doc.feed {
                    self.error(
                        at.of(feed),
                        "a kind with a feed needs feed_groups, so that scope tokens' compact feed ids (userjack) read one way only",
                    );
                }
            }
        }
        let decl = KindDecl {
            id: doc.id.as_ref().map(|id| id.to_string()),
            id_pattern,
            owner,
            feed,
            feed_groups: Vec::new(),
            channel,
            actions: doc.actions.to_vec(),
        };
        let fields = [
            (&decl.owner, &doc.owner),
            (&decl.feed, &doc.feed),
            (&decl.channel, &doc.channel),
        ];
        for (op, text) in fields {
            if let Some(Operand::Capture(name)) = op
                && !has_capture(Some(&decl), name)
            {
                self.error(at.of_opt(text.as_ref()), unknown_capture(name));
            }
        }
        decl
    }
}
