//! The simulated application: applies what the core hands out, restores
//! snapshots, and tells the checker.

use super::*;

impl SimNode {
    /// The application applies an entry, or restores a snapshot, handed to
    /// it by the core, and tells the core.
    pub(super) fn apply(&mut self, id: NodeId, checker: &mut Checker, report: &mut SimReport, item: ToApply) {
        let Some(node) = self.node.as_mut() else { return };
        match item {
            // A snapshot restored after this entry was queued already holds it.
            ToApply::Entry(entry) if entry.index <= self.app_applied => node.handle_applied(entry.index),
            ToApply::Entry(entry) => {
                checker.on_apply(id, self.app_applied, &entry);
                self.app_applied = entry.index;
                self.app_digest = chain_step(self.app_digest, digest(&entry));
                if let Some(observed) = self.app_sessions.apply(id, &entry, checker) {
                    self.session_replies.push(observed);
                }
                if entry.data.as_ref() == PROBE {
                    self.probe_applied = true;
                }
                node.handle_applied(entry.index);
            }
            ToApply::Install(meta) if meta.index <= self.app_applied => node.handle_applied(meta.index),
            ToApply::Install(meta) => {
                // While the install waited its turn, a newer snapshot may
                // have replaced the one it names; restoring that one is as
                // good (the runtime's `Snapshots::restore` does the same).
                let newest = self.snapshot.clone().filter(|s| s.meta == meta || s.meta.index > meta.index);
                let Some(snapshot) = newest else {
                    checker.fail(
                        "snapshots",
                        format!("a node installs snapshot {} it does not hold", meta.index),
                    );
                    return;
                };
                checker.on_install(id, &snapshot.meta, snapshot.digest);
                report.snapshots_installed += 1;
                let Some(sessions) = sessions::AppSessions::restore(&snapshot.sessions) else {
                    checker.fail(
                        "sessions",
                        format!("{id}: snapshot {}'s session table does not decode", meta.index),
                    );
                    return;
                };
                self.app_applied = snapshot.meta.index;
                self.app_digest = snapshot.digest;
                self.app_sessions = sessions;
                node.handle_applied(meta.index);
            }
        }
    }
}

/// The node's snapshot if it is `meta`; a violation otherwise (the core
/// asked to send a snapshot the node does not hold).
pub(super) fn held(
    checker: &mut Checker,
    snapshot: &Option<Snapshot>,
    meta: &SnapshotMeta,
    what: &str,
) -> Option<Snapshot> {
    let found = snapshot.clone().filter(|s| s.meta == *meta);
    if found.is_none() {
        checker.fail("snapshots", format!("a node {what} snapshot {} it does not hold", meta.index));
    }
    found
}
