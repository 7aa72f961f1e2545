//! Checking the local block log against the tree heads the gateway anchored
//! on the hospital's consultation blockchain (`vitalgate verify --anchors`).
//!
//! A gateway that holds its own log can rewrite it and re-sign everything:
//! `verify` alone cannot tell. What it cannot rewrite is a tree head it
//! already published elsewhere. So each anchor's signed tree head is opened
//! with the gateway key, held to the fields the chain recorded beside it,
//! and then to the local log: its first `size` leaves must have the
//! anchored root, and successive anchors must be linked by an RFC 9162
//! consistency proof built from the local log (the anchored history was
//! only ever appended to).
//!
//! The answer an auditor needs is *where* the log was changed: the last
//! anchor the log agrees with and the first one it does not bound the
//! rewritten blocks. Anchors are checked in size order whatever order the
//! chain clients hand them over in, so the same anchors always give the
//! same report. Everything here is pure computation over bytes already in
//! memory; fetching the anchors is the chain clients' job.

use crate::block::TreeHead;
use crate::crypto::keys::IdentityPublic;
use crate::merkle::{self, Frontier, Hash};
use crate::verify::hex;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::fmt;

/// One tree head as found on the consultation chain: the fields the anchor
/// transaction recorded, and the signed tree head published with them.
///
/// The recorded fields are what the chain's own contract and explorers
/// show; the signed tree head is what proves the gateway said it. Both
/// are kept so a mismatch between them is seen rather than assumed away.
/// Byte strings are hex in JSON, as in proofs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnchoredHead {
    /// Log size recorded on chain.
    pub size: u64,
    /// Log root recorded on chain.
    #[serde(with = "hex_bytes")]
    pub root: Hash,
    /// Tree head time recorded on chain (ms since the Unix epoch).
    pub time: i64,
    /// The signed tree head (COSE_Sign1) published with the anchor.
    #[serde(with = "hex_bytes")]
    pub tree_head: Vec<u8>,
    /// Where the anchor was found (e.g. "tx 0xab… in block 1234"); only
    /// used in messages, so an auditor can look it up.
    pub location: String,
}

/// A recorded field of an anchor, named when it differs from the signed
/// tree head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    /// The log size.
    Size,
    /// The log root.
    Root,
    /// The tree head time.
    Time,
}

impl Field {
    /// The name printed.
    pub fn as_str(self) -> &'static str {
        match self {
            Field::Size => "size",
            Field::Root => "root",
            Field::Time => "time",
        }
    }
}

/// The consistency proof that links an agreeing anchor to the previous
/// agreeing one: the explicit evidence that the log between them was only
/// appended to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Extension {
    /// Size of the previous agreeing anchor.
    pub from_size: u64,
    /// Hashes in the RFC 9162 consistency proof that held.
    pub proof_len: usize,
}

/// What one anchor says about the local log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// The local log's first `size` blocks have the anchored root and,
    /// when there is an earlier agreeing anchor, the consistency proof from
    /// it holds.
    Agrees {
        /// The proof from the previous agreeing anchor (none for the first).
        extends: Option<Extension>,
    },
    /// Another anchor has the same size and root: the same tree head
    /// anchored twice. It shares that anchor's verdict.
    Duplicate {
        /// Location of the anchor holding the verdict.
        of: String,
        /// Whether that anchor agrees with the local log.
        agrees: bool,
    },
    /// The published tree head does not open under the gateway key (or
    /// names another gateway): it proves nothing about this log, so it is
    /// not the log's divergence, but someone published it in the
    /// gateway's name.
    NotSigned {
        /// Why it does not open.
        reason: String,
    },
    /// The chain recorded other values than the signed tree head holds; the
    /// anchor is not used, since one of the two was not what the gateway
    /// published.
    RecordedDiffers {
        /// The first field that differs (size, root, time).
        field: Field,
        /// The value recorded on chain.
        recorded: String,
        /// The value in the signed tree head.
        signed: String,
    },
    /// The gateway anchored more blocks than the local log holds: history
    /// was lost or cut back after anchoring.
    BeyondLocalLog {
        /// Blocks anchored.
        anchored: u64,
        /// Blocks in the local log.
        local: u64,
    },
    /// The local log's first `size` blocks have another root: it was
    /// rewritten after anchoring.
    Diverged,
    /// The roots match but the consistency proof from the previous
    /// agreeing anchor fails (cannot happen with a correct Merkle
    /// implementation, but it is checked, not assumed).
    Inconsistent {
        /// Size of the previous agreeing anchor.
        from_size: u64,
        /// Why the proof fails.
        reason: String,
    },
    /// The gateway signed two different roots for the same size: its
    /// history forked.
    Fork {
        /// Location of an anchor of the same size with another root.
        other: String,
        /// Whether the local log matches this anchor's root.
        matches_local: bool,
    },
}

impl Outcome {
    /// Whether this anchor confirms the local log.
    pub fn agrees(&self) -> bool {
        matches!(
            self,
            Outcome::Agrees { .. } | Outcome::Duplicate { agrees: true, .. }
        )
    }

    /// Whether this anchor shows the local log (or the gateway's history)
    /// differs from what was anchored. Heads the gateway did not sign, or
    /// whose recorded fields differ from them, prove nothing either way;
    /// a duplicate shares its original's verdict and is not counted again.
    pub fn is_divergence(&self) -> bool {
        matches!(
            self,
            Outcome::BeyondLocalLog { .. }
                | Outcome::Diverged
                | Outcome::Inconsistent { .. }
                | Outcome::Fork { .. }
        )
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Agrees { extends: None } => write!(f, "agrees"),
            Outcome::Agrees { extends: Some(ext) } => write!(
                f,
                "agrees; consistency proof from size {} holds ({} hashes)",
                ext.from_size, ext.proof_len
            ),
            Outcome::Duplicate { of, agrees } => write!(
                f,
                "duplicate of the anchor at {of} ({})",
                if *agrees { "agrees" } else { "does not agree" }
            ),
            Outcome::NotSigned { reason } => {
                write!(f, "tree head not signed by this gateway: {reason}")
            }
            Outcome::RecordedDiffers {
                field,
                recorded,
                signed,
            } => write!(
                f,
                "recorded fields differ from the signed tree head: {} recorded {recorded}, signed {signed}",
                field.as_str()
            ),
            Outcome::BeyondLocalLog { anchored, local } => write!(
                f,
                "local log is shorter than what was anchored: {anchored} blocks anchored, {local} held locally"
            ),
            Outcome::Diverged => write!(
                f,
                "diverged: the local log's blocks up to this size have another root"
            ),
            Outcome::Inconsistent { from_size, reason } => write!(
                f,
                "diverged: the consistency proof from size {from_size} does not hold: {reason}"
            ),
            Outcome::Fork {
                other,
                matches_local,
            } => write!(
                f,
                "fork: the gateway signed another root for this size (at {other}); the local log {} this one",
                if *matches_local {
                    "matches"
                } else {
                    "does not match"
                }
            ),
        }
    }
}

/// One anchor and its outcome, as listed in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AnchorCheck {
    /// Log size recorded on chain.
    pub size: u64,
    /// Tree head time recorded on chain (ms since the Unix epoch).
    pub time: i64,
    /// Where the anchor was found.
    pub location: String,
    /// What it says about the local log.
    #[serde(flatten)]
    pub outcome: Outcome,
}

impl fmt::Display for AnchorCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "anchor at size {} ({}): {}",
            self.size, self.location, self.outcome
        )
    }
}

/// An anchor named in a divergence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AnchorRef {
    /// Its log size.
    pub size: u64,
    /// Where it was found.
    pub location: String,
}

/// The first anchor (by size) the local log disagrees with, and the last
/// one before it that agrees: between them lie the blocks that changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Divergence {
    /// The first anchor the log disagrees with.
    pub anchor: AnchorRef,
    /// The last agreeing anchor of a smaller size (none: the log diverges
    /// before the first anchor).
    pub last_agreeing: Option<AnchorRef>,
    /// How it disagrees.
    pub outcome: Outcome,
}

impl Divergence {
    /// First height (0-based) that may have changed: the last agreeing
    /// anchor's size, or 0.
    pub fn from_height(&self) -> u64 {
        self.last_agreeing.as_ref().map_or(0, |a| a.size)
    }
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.anchor.size;
        let at = &self.anchor.location;
        let from = self.from_height();
        match &self.last_agreeing {
            Some(a) => write!(
                f,
                "the log agrees with the anchor at size {} ({}) and ",
                a.size, a.location
            )?,
            None => write!(f, "the log diverges before the first anchor: it ")?,
        }
        match &self.outcome {
            Outcome::BeyondLocalLog { local, .. } => {
                write!(
                    f,
                    "holds only {local} of the {n} blocks anchored at {at}: it lost {} after anchoring",
                    blocks(*local, n)
                )?;
                if from < *local {
                    write!(f, ", and {} may have been rewritten", blocks(from, *local))?;
                }
                write!(f, " (heights are 0-based)")
            }
            Outcome::Fork { other, .. } => write!(
                f,
                "the gateway signed two different roots for size {n} (at {at} and at {other}): its history forked in {} (heights are 0-based)",
                blocks(from, n)
            ),
            Outcome::Diverged if n == 0 => write!(
                f,
                "differs from the anchor at size 0 ({at}), whose root is not the empty log's: the gateway signed a tree head no log has"
            ),
            Outcome::Inconsistent { from_size, reason } => write!(
                f,
                "differs from the one at size {n} ({at}): the consistency proof from size {from_size} fails ({reason}); it was rewritten somewhere in {} (heights are 0-based)",
                blocks(from, n)
            ),
            _ => write!(
                f,
                "differs from the one at size {n} ({at}): it was rewritten somewhere in {} (heights are 0-based)",
                blocks(from, n)
            ),
        }
    }
}

/// "block 6" or "blocks 3..6" for the heights `from..to` (end excluded).
fn blocks(from: u64, to: u64) -> String {
    if from.saturating_add(1) >= to {
        format!("block {from}")
    } else {
        format!("blocks {from}..{}", to - 1)
    }
}

/// What `vitalgate verify --anchors` prints: every anchor's outcome in
/// ascending size order, and the summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AnchorReport {
    /// Blocks in the local log.
    pub local_size: u64,
    /// Every anchor given, by ascending size.
    pub anchors: Vec<AnchorCheck>,
    /// Anchors checked (all those given).
    pub checked: usize,
    /// Anchors that confirm the local log.
    pub agreeing: usize,
    /// The first anchor the local log disagrees with, if any.
    pub first_divergence: Option<Divergence>,
}

impl AnchorReport {
    /// Whether every anchor confirms the local log: no divergence, and no
    /// anchor that failed to open or match its recorded fields.
    pub fn all_agree(&self) -> bool {
        self.agreeing == self.checked
    }

    /// Anchors whose tree head this gateway did not sign.
    pub fn not_signed(&self) -> usize {
        self.count(|o| matches!(o, Outcome::NotSigned { .. }))
    }

    /// Anchors whose recorded fields differ from their signed tree head.
    pub fn recorded_differs(&self) -> usize {
        self.count(|o| matches!(o, Outcome::RecordedDiffers { .. }))
    }

    fn count(&self, which: impl Fn(&Outcome) -> bool) -> usize {
        self.anchors.iter().filter(|a| which(&a.outcome)).count()
    }
}

impl fmt::Display for AnchorReport {
    /// One line: the counts, then the first divergence if there is one.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.checked == 0 {
            return write!(
                f,
                "no anchors to check against the local log ({} blocks)",
                self.local_size
            );
        }
        write!(
            f,
            "{} of {} anchors agree with the local log ({} blocks)",
            self.agreeing, self.checked, self.local_size
        )?;
        let not_signed = self.not_signed();
        if not_signed > 0 {
            write!(f, "; {not_signed} not signed by this gateway")?;
        }
        let differs = self.recorded_differs();
        if differs > 0 {
            write!(
                f,
                "; {differs} with recorded fields that differ from the signed tree head"
            )?;
        }
        if let Some(divergence) = &self.first_divergence {
            write!(f, "; {divergence}")?;
        }
        Ok(())
    }
}

/// Check the local log (`leaves`: its leaf hashes in order, as
/// [`LedgerReader::log_leaves`](crate::reader::LedgerReader::log_leaves)
/// gives them) against anchored tree heads signed by `key`.
///
/// Never fails and never panics: whatever is wrong with an anchor is its
/// outcome. Costs one pass over the leaves for the roots, plus one
/// consistency proof (linear in the newer size) per pair of successive
/// agreeing anchors.
pub fn check_anchored(
    leaves: &[Hash],
    key: &IdentityPublic,
    anchors: &[AnchoredHead],
) -> AnchorReport {
    let local_size = leaves.len() as u64;
    let mut order: Vec<&AnchoredHead> = anchors.iter().collect();
    order.sort_by(|a, b| by_size(a, b));

    // Steps 1 and 2: which anchors are this gateway's, as recorded.
    let mut outcomes: Vec<Option<Outcome>> = order.iter().map(|a| validate(a, key)).collect();

    // Steps 3 to 6 over the valid anchors, one size at a time.
    let mut log = Frontier::new();
    let mut previous: Option<(u64, Hash)> = None;
    let mut i = 0;
    while i < order.len() {
        let size = order[i].size;
        let group: Vec<usize> = (i..order.len())
            .take_while(|&j| order[j].size == size)
            .filter(|&j| outcomes[j].is_none())
            .collect();
        i += (i..order.len())
            .take_while(|&j| order[j].size == size)
            .count();
        let Some(&first) = group.first() else {
            continue;
        };
        let local = local_root(&mut log, leaves, size);
        if let Some(&fork) = group.iter().find(|&&j| order[j].root != order[first].root) {
            // Step 6: different roots for one size. Every anchor of the
            // size names one with another root.
            for &j in &group {
                let other = if order[j].root == order[first].root {
                    fork
                } else {
                    first
                };
                outcomes[j] = Some(Outcome::Fork {
                    other: order[other].location.clone(),
                    matches_local: local == Some(order[j].root),
                });
            }
            continue;
        }
        let verdict = check_prefix(order[first], local, local_size, leaves, previous);
        if verdict.agrees() {
            previous = Some((size, order[first].root));
        }
        for &j in &group[1..] {
            outcomes[j] = Some(Outcome::Duplicate {
                of: order[first].location.clone(),
                agrees: verdict.agrees(),
            });
        }
        outcomes[first] = Some(verdict);
    }

    let checks: Vec<AnchorCheck> = order
        .iter()
        .zip(outcomes)
        .map(|(anchor, outcome)| AnchorCheck {
            size: anchor.size,
            time: anchor.time,
            location: anchor.location.clone(),
            // Every valid anchor is in a size group, so this is only a
            // fallback that keeps the function total.
            outcome: outcome.unwrap_or(Outcome::Diverged),
        })
        .collect();
    AnchorReport {
        local_size,
        checked: checks.len(),
        agreeing: checks.iter().filter(|c| c.outcome.agrees()).count(),
        first_divergence: first_divergence(&checks),
        anchors: checks,
    }
}

/// Ascending size, then a total order on the rest, so the report does not
/// depend on the order the anchors were fetched in.
fn by_size(a: &AnchoredHead, b: &AnchoredHead) -> Ordering {
    (a.size, &a.root, a.time, &a.tree_head, &a.location).cmp(&(
        b.size,
        &b.root,
        b.time,
        &b.tree_head,
        &b.location,
    ))
}

/// Steps 1 and 2: the published tree head opens under the gateway key,
/// names this gateway, and holds what the chain recorded. `None` when it
/// does; otherwise the anchor's outcome.
fn validate(anchor: &AnchoredHead, key: &IdentityPublic) -> Option<Outcome> {
    let head = match TreeHead::open(&anchor.tree_head, key) {
        Ok(head) => head,
        Err(e) => {
            return Some(Outcome::NotSigned {
                reason: e.to_string(),
            });
        }
    };
    // `TreeHead::open` checks the COSE kid and signature, not the gateway
    // named inside the payload.
    if head.gateway != key.kid() {
        return Some(Outcome::NotSigned {
            reason: format!(
                "the tree head names gateway {}, not this gateway ({})",
                head.gateway,
                key.kid()
            ),
        });
    }
    let differs = |field, recorded: String, signed: String| {
        Some(Outcome::RecordedDiffers {
            field,
            recorded,
            signed,
        })
    };
    if head.size != anchor.size {
        return differs(Field::Size, anchor.size.to_string(), head.size.to_string());
    }
    if head.root != anchor.root {
        return differs(Field::Root, hex(&anchor.root), hex(&head.root));
    }
    if head.time.0 != anchor.time {
        return differs(
            Field::Time,
            anchor.time.to_string(),
            head.time.0.to_string(),
        );
    }
    None
}

/// The local log's root over its first `size` leaves, growing `log` (sizes
/// come in ascending order, so one pass over the leaves serves every
/// anchor); `None` when the log is shorter.
fn local_root(log: &mut Frontier, leaves: &[Hash], size: u64) -> Option<Hash> {
    if size > leaves.len() as u64 {
        return None;
    }
    while log.size() < size {
        let leaf = leaves.get(usize::try_from(log.size()).ok()?)?;
        log.push(*leaf);
    }
    Some(log.root())
}

/// Steps 3 to 5 for one valid anchor: the log is long enough, its prefix
/// has the anchored root, and the previous agreeing anchor's tree extends
/// to this one by a consistency proof built from the local log.
fn check_prefix(
    anchor: &AnchoredHead,
    local: Option<Hash>,
    local_size: u64,
    leaves: &[Hash],
    previous: Option<(u64, Hash)>,
) -> Outcome {
    let Some(local) = local else {
        return Outcome::BeyondLocalLog {
            anchored: anchor.size,
            local: local_size,
        };
    };
    if local != anchor.root {
        return Outcome::Diverged;
    }
    let Some((old_size, old_root)) = previous else {
        return Outcome::Agrees { extends: None };
    };
    let inconsistent = |reason: String| Outcome::Inconsistent {
        from_size: old_size,
        reason,
    };
    let Some(prefix) = usize::try_from(anchor.size)
        .ok()
        .and_then(|n| leaves.get(..n))
    else {
        return inconsistent("the local log is shorter than the anchor".into());
    };
    let proof = match merkle::consistency_proof(prefix, old_size) {
        Ok(proof) => proof,
        Err(e) => return inconsistent(e.to_string()),
    };
    match merkle::verify_consistency(old_size, anchor.size, &old_root, &anchor.root, &proof) {
        Ok(()) => Outcome::Agrees {
            extends: Some(Extension {
                from_size: old_size,
                proof_len: proof.len(),
            }),
        },
        Err(e) => inconsistent(e.to_string()),
    }
}

/// The first divergent anchor (the list is in size order) and the last
/// agreeing anchor of a smaller size.
fn first_divergence(checks: &[AnchorCheck]) -> Option<Divergence> {
    let at = checks.iter().position(|c| c.outcome.is_divergence())?;
    let bad = &checks[at];
    let last_agreeing = checks[..at]
        .iter()
        .rev()
        .find(|c| c.size < bad.size && matches!(c.outcome, Outcome::Agrees { .. }))
        .map(|c| AnchorRef {
            size: c.size,
            location: c.location.clone(),
        });
    Some(Divergence {
        anchor: AnchorRef {
            size: bad.size,
            location: bad.location.clone(),
        },
        last_agreeing,
        outcome: bad.outcome.clone(),
    })
}

/// Byte strings as lowercase hex in JSON, as proofs carry them.
mod hex_bytes {
    use crate::verify::hex;
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer, T: AsRef<[u8]>>(bytes: &T, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex(bytes.as_ref()))
    }

    pub fn deserialize<'de, D, T>(d: D) -> Result<T, D::Error>
    where
        D: Deserializer<'de>,
        T: TryFrom<Vec<u8>>,
    {
        let text = String::deserialize(d)?;
        if text.len() % 2 != 0 {
            return Err(D::Error::custom("odd number of hex digits"));
        }
        let bytes = (0..text.len())
            .step_by(2)
            .map(|i| {
                text.get(i..i + 2)
                    .and_then(|digits| u8::from_str_radix(digits, 16).ok())
                    .ok_or_else(|| D::Error::custom("not hex"))
            })
            .collect::<Result<Vec<u8>, _>>()?;
        let len = bytes.len();
        T::try_from(bytes)
            .map_err(|_| D::Error::custom(format!("{len} bytes is the wrong length here")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::keys::IdentityKey;
    use vitalgate_devices::Timestamp;

    const T0: i64 = 1_700_000_000_000;

    /// 12 distinct leaves, like a log of 12 sealed blocks.
    fn log() -> Vec<Hash> {
        (0..12u8).map(|i| merkle::leaf_hash(&[i])).collect()
    }

    fn key() -> IdentityKey {
        IdentityKey::generate().unwrap()
    }

    /// The anchor the gateway `key` publishes for the first `size` leaves.
    fn anchor(key: &IdentityKey, leaves: &[Hash], size: usize, location: &str) -> AnchoredHead {
        anchor_of(key, size as u64, merkle::root(&leaves[..size]), location)
    }

    fn anchor_of(key: &IdentityKey, size: u64, root: Hash, location: &str) -> AnchoredHead {
        let time = T0 + (size % 1_000) as i64 * 60_000;
        let head = TreeHead {
            gateway: key.kid(),
            size,
            root,
            time: Timestamp(time),
        };
        AnchoredHead {
            size,
            root,
            time,
            tree_head: head.sign(key),
            location: location.to_owned(),
        }
    }

    fn sizes(report: &AnchorReport) -> Vec<u64> {
        report.anchors.iter().map(|a| a.size).collect()
    }

    fn outcome(report: &AnchorReport, location: &str) -> Outcome {
        report
            .anchors
            .iter()
            .find(|a| a.location == location)
            .unwrap()
            .outcome
            .clone()
    }

    fn three_anchors(key: &IdentityKey, leaves: &[Hash]) -> Vec<AnchoredHead> {
        vec![
            anchor(key, leaves, 3, "tx a"),
            anchor(key, leaves, 7, "tx b"),
            anchor(key, leaves, 12, "tx c"),
        ]
    }

    #[test]
    fn anchors_that_all_agree_are_linked_by_consistency_proofs_and_no_divergence() {
        let key = key();
        let leaves = log();
        let report = check_anchored(&leaves, &key.public(), &three_anchors(&key, &leaves));
        assert_eq!(sizes(&report), [3, 7, 12]);
        assert_eq!((report.checked, report.agreeing), (3, 3));
        assert!(report.all_agree());
        assert_eq!(report.first_divergence, None);
        assert_eq!(report.local_size, 12);
        assert_eq!(outcome(&report, "tx a"), Outcome::Agrees { extends: None });
        for (location, from, to) in [("tx b", 3, 7), ("tx c", 7, 12)] {
            let proof_len = merkle::consistency_proof_len(from, to).unwrap();
            assert!(proof_len > 0);
            let extends = Some(Extension {
                from_size: from,
                proof_len,
            });
            assert_eq!(outcome(&report, location), Outcome::Agrees { extends });
        }
        assert_eq!(
            report.to_string(),
            "3 of 3 anchors agree with the local log (12 blocks)"
        );
    }

    #[test]
    fn the_report_is_the_same_whatever_order_the_anchors_come_in() {
        let key = key();
        let leaves = log();
        let anchors = three_anchors(&key, &leaves);
        let want = check_anchored(&leaves, &key.public(), &anchors);
        for order in [[0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]] {
            let shuffled: Vec<AnchoredHead> = order.iter().map(|&i| anchors[i].clone()).collect();
            assert_eq!(check_anchored(&leaves, &key.public(), &shuffled), want);
        }
    }

    #[test]
    fn a_rewritten_block_lies_between_the_last_agreeing_anchor_and_the_first_diverging_one() {
        let key = key();
        let leaves = log();
        let anchors = three_anchors(&key, &leaves);
        let mut rewritten = leaves.clone();
        rewritten[5] = merkle::leaf_hash(b"rewritten");
        let report = check_anchored(&rewritten, &key.public(), &anchors);
        assert_eq!(outcome(&report, "tx a"), Outcome::Agrees { extends: None });
        assert_eq!(outcome(&report, "tx b"), Outcome::Diverged);
        assert_eq!(outcome(&report, "tx c"), Outcome::Diverged);
        assert_eq!((report.checked, report.agreeing), (3, 1));
        let divergence = report.first_divergence.clone().unwrap();
        assert_eq!(divergence.anchor.size, 7);
        assert_eq!(divergence.anchor.location, "tx b");
        assert_eq!(divergence.last_agreeing.as_ref().unwrap().size, 3);
        assert_eq!(divergence.from_height(), 3);
        let message = divergence.to_string();
        assert!(
            message.contains("agrees with the anchor at size 3 (tx a)"),
            "{message}"
        );
        assert!(message.contains("size 7 (tx b)"), "{message}");
        assert!(message.contains("blocks 3..6"), "{message}");
        assert!(report.to_string().starts_with("1 of 3 anchors agree"));
    }

    #[test]
    fn a_log_rewritten_before_the_first_anchor_says_so() {
        let key = key();
        let leaves = log();
        let anchors = three_anchors(&key, &leaves);
        let mut rewritten = leaves.clone();
        rewritten[0] = merkle::leaf_hash(b"rewritten");
        let report = check_anchored(&rewritten, &key.public(), &anchors);
        assert_eq!(report.agreeing, 0);
        let divergence = report.first_divergence.unwrap();
        assert_eq!(divergence.anchor.size, 3);
        assert_eq!(divergence.last_agreeing, None);
        let message = divergence.to_string();
        assert!(
            message.contains("diverges before the first anchor"),
            "{message}"
        );
        assert!(message.contains("blocks 0..2"), "{message}");
    }

    #[test]
    fn a_local_log_truncated_below_an_anchor_is_the_first_divergence() {
        let key = key();
        let leaves = log();
        let anchors = three_anchors(&key, &leaves);
        let report = check_anchored(&leaves[..8], &key.public(), &anchors);
        assert!(outcome(&report, "tx a").agrees());
        assert!(outcome(&report, "tx b").agrees());
        assert_eq!(
            outcome(&report, "tx c"),
            Outcome::BeyondLocalLog {
                anchored: 12,
                local: 8
            }
        );
        let divergence = report.first_divergence.clone().unwrap();
        assert_eq!(divergence.anchor.size, 12);
        assert_eq!(divergence.last_agreeing.as_ref().unwrap().size, 7);
        let message = divergence.to_string();
        assert!(message.contains("holds only 8 of the 12"), "{message}");
        assert!(message.contains("lost blocks 8..11"), "{message}");
        assert!(
            message.contains("block 7 may have been rewritten"),
            "{message}"
        );
    }

    #[test]
    fn a_tree_head_signed_by_another_key_is_reported_but_is_not_a_divergence() {
        let key = key();
        let other = IdentityKey::generate().unwrap();
        let leaves = log();
        let mut anchors = three_anchors(&key, &leaves);
        // Another gateway's head, over a history this log never had.
        anchors.push(anchor_of(&other, 5, [9; 32], "tx foreign"));
        let report = check_anchored(&leaves, &key.public(), &anchors);
        let Outcome::NotSigned { reason } = outcome(&report, "tx foreign") else {
            panic!("{report:?}");
        };
        assert!(reason.contains(&other.kid().to_string()), "{reason}");
        assert_eq!(sizes(&report), [3, 5, 7, 12]);
        assert_eq!((report.checked, report.agreeing), (4, 3));
        assert_eq!(report.first_divergence, None);
        assert!(!report.all_agree());
        assert_eq!(report.not_signed(), 1);
        assert!(report.to_string().contains("1 not signed by this gateway"));
        // The agreeing anchors still chain past it: 3 → 7.
        let Outcome::Agrees { extends: Some(ext) } = outcome(&report, "tx b") else {
            panic!("{report:?}");
        };
        assert_eq!(ext.from_size, 3);
    }

    #[test]
    fn a_tree_head_with_a_flipped_signature_bit_is_not_signed_by_this_gateway() {
        let key = key();
        let leaves = log();
        let mut flipped = anchor(&key, &leaves, 7, "tx flipped");
        let last = flipped.tree_head.len() - 1;
        flipped.tree_head[last] ^= 0x01;
        let report = check_anchored(&leaves, &key.public(), &[flipped]);
        let Outcome::NotSigned { reason } = outcome(&report, "tx flipped") else {
            panic!("{report:?}");
        };
        assert!(reason.contains("signature does not verify"), "{reason}");
        assert_eq!((report.checked, report.agreeing), (1, 0));
        assert_eq!(report.first_divergence, None);
    }

    #[test]
    fn a_tree_head_naming_another_gateway_is_not_this_gateways_even_with_its_signature() {
        let key = key();
        let leaves = log();
        let root = merkle::root(&leaves[..7]);
        let mut named = anchor_of(&key, 7, root, "tx named");
        named.tree_head = TreeHead {
            gateway: crate::crypto::keys::KeyId([0x42; 16]),
            size: 7,
            root,
            time: Timestamp(named.time),
        }
        .sign(&key);
        let report = check_anchored(&leaves, &key.public(), &[named]);
        let Outcome::NotSigned { reason } = outcome(&report, "tx named") else {
            panic!("{report:?}");
        };
        assert!(reason.contains("names gateway 4242"), "{reason}");
    }

    #[test]
    fn an_anchor_whose_recorded_fields_differ_from_its_signed_tree_head_names_the_field() {
        let key = key();
        let leaves = log();
        let mut root = anchor(&key, &leaves, 7, "tx root");
        root.root[0] ^= 0xff;
        let mut size = anchor(&key, &leaves, 3, "tx size");
        size.size = 4;
        let mut time = anchor(&key, &leaves, 12, "tx time");
        time.time += 1;
        let report = check_anchored(&leaves, &key.public(), &[root, size, time]);
        for (location, field) in [
            ("tx root", Field::Root),
            ("tx size", Field::Size),
            ("tx time", Field::Time),
        ] {
            let Outcome::RecordedDiffers {
                field: got,
                recorded,
                signed,
            } = outcome(&report, location)
            else {
                panic!("{report:?}");
            };
            assert_eq!(got, field);
            assert_ne!(recorded, signed);
        }
        let Outcome::RecordedDiffers { signed, .. } = outcome(&report, "tx root") else {
            unreachable!()
        };
        assert_eq!(signed, hex(&merkle::root(&leaves[..7])));
        assert_eq!((report.checked, report.agreeing), (3, 0));
        assert_eq!(report.first_divergence, None);
        assert_eq!(report.recorded_differs(), 3);
    }

    #[test]
    fn garbage_as_a_tree_head_is_reported_without_panicking() {
        let key = key();
        let leaves = log();
        let good = anchor(&key, &leaves, 7, "tx good");
        let mut anchors = vec![good.clone()];
        let garbage: Vec<Vec<u8>> = vec![
            Vec::new(),
            vec![0xff; 3],
            b"not a tree head at all".to_vec(),
            good.tree_head[..good.tree_head.len() / 2].to_vec(),
            [good.tree_head.clone(), vec![0]].concat(),
            // Signed by this gateway, but not a tree head.
            crate::crypto::cose::sign1(&key, b"\xa0"),
        ];
        for (i, bytes) in garbage.into_iter().enumerate() {
            anchors.push(AnchoredHead {
                tree_head: bytes,
                location: format!("tx garbage {i}"),
                ..good.clone()
            });
        }
        let report = check_anchored(&leaves, &key.public(), &anchors);
        assert_eq!((report.checked, report.agreeing), (7, 1));
        assert_eq!(report.not_signed(), 6);
        assert_eq!(report.first_divergence, None);
        for check in report.anchors.iter().filter(|a| a.location != "tx good") {
            assert!(
                matches!(check.outcome, Outcome::NotSigned { .. }),
                "{check}"
            );
        }
    }

    #[test]
    fn two_anchors_of_the_same_size_with_different_roots_are_a_fork() {
        let key = key();
        let leaves = log();
        let mut other = leaves.clone();
        other[4] = merkle::leaf_hash(b"other history");
        let anchors = vec![
            anchor(&key, &leaves, 3, "tx a"),
            anchor(&key, &leaves, 7, "tx ours"),
            anchor(&key, &other, 7, "tx theirs"),
        ];
        let report = check_anchored(&leaves, &key.public(), &anchors);
        assert_eq!(
            outcome(&report, "tx ours"),
            Outcome::Fork {
                other: "tx theirs".into(),
                matches_local: true
            }
        );
        assert_eq!(
            outcome(&report, "tx theirs"),
            Outcome::Fork {
                other: "tx ours".into(),
                matches_local: false
            }
        );
        assert_eq!((report.checked, report.agreeing), (3, 1));
        let divergence = report.first_divergence.unwrap();
        assert_eq!(divergence.anchor.size, 7);
        assert_eq!(divergence.last_agreeing.as_ref().unwrap().size, 3);
        assert!(
            divergence
                .to_string()
                .contains("two different roots for size 7")
        );
    }

    #[test]
    fn the_same_tree_head_anchored_twice_is_a_duplicate_that_agrees() {
        let key = key();
        let leaves = log();
        let first = anchor(&key, &leaves, 7, "tx 1");
        let again = AnchoredHead {
            location: "tx 2".into(),
            ..first.clone()
        };
        let report = check_anchored(&leaves, &key.public(), &[again, first]);
        assert_eq!(outcome(&report, "tx 1"), Outcome::Agrees { extends: None });
        assert_eq!(
            outcome(&report, "tx 2"),
            Outcome::Duplicate {
                of: "tx 1".into(),
                agrees: true
            }
        );
        assert_eq!((report.checked, report.agreeing), (2, 2));
        assert_eq!(report.first_divergence, None);
    }

    #[test]
    fn no_anchors_give_an_empty_report() {
        let key = key();
        let report = check_anchored(&log(), &key.public(), &[]);
        assert_eq!(
            report,
            AnchorReport {
                local_size: 12,
                anchors: Vec::new(),
                checked: 0,
                agreeing: 0,
                first_divergence: None,
            }
        );
        assert!(report.all_agree());
        assert_eq!(
            report.to_string(),
            "no anchors to check against the local log (12 blocks)"
        );
    }

    #[test]
    fn an_anchor_of_the_empty_log_agrees_only_with_the_empty_root() {
        let key = key();
        let leaves = log();
        let empty = anchor_of(&key, 0, merkle::EMPTY_ROOT, "tx empty");
        let later = anchor(&key, &leaves, 5, "tx later");
        let report = check_anchored(&leaves, &key.public(), &[later, empty]);
        assert_eq!(sizes(&report), [0, 5]);
        assert_eq!((report.checked, report.agreeing), (2, 2));
        let extends = Some(Extension {
            from_size: 0,
            proof_len: 0,
        });
        assert_eq!(outcome(&report, "tx later"), Outcome::Agrees { extends });

        let bogus = anchor_of(&key, 0, [1; 32], "tx bogus");
        let report = check_anchored(&[], &key.public(), &[bogus]);
        assert_eq!(outcome(&report, "tx bogus"), Outcome::Diverged);
        let message = report.first_divergence.unwrap().to_string();
        assert!(message.contains("not the empty log's"), "{message}");
    }

    #[test]
    fn anchors_of_absurd_sizes_do_not_panic() {
        let key = key();
        let leaves = log();
        let anchors = vec![
            anchor_of(&key, u64::MAX, [0; 32], "tx max"),
            anchor_of(&key, 1 << 63, merkle::EMPTY_ROOT, "tx half"),
            anchor(&key, &leaves, 12, "tx all"),
        ];
        let report = check_anchored(&leaves, &key.public(), &anchors);
        assert_eq!(sizes(&report), [12, 1 << 63, u64::MAX]);
        assert!(outcome(&report, "tx all").agrees());
        assert_eq!(
            outcome(&report, "tx max"),
            Outcome::BeyondLocalLog {
                anchored: u64::MAX,
                local: 12
            }
        );
        assert_eq!(report.first_divergence.unwrap().anchor.size, 1 << 63);
        let report = check_anchored(&[], &key.public(), &anchors);
        assert_eq!(report.agreeing, 0);
    }

    #[test]
    fn an_anchor_round_trips_through_json_with_its_bytes_in_hex() {
        let key = key();
        let leaves = log();
        let anchor = anchor(&key, &leaves, 3, "tx 0xab in block 1234");
        let json = serde_json::to_string(&anchor).unwrap();
        assert!(json.contains(&hex(&anchor.root)), "{json}");
        assert!(json.contains(&hex(&anchor.tree_head)), "{json}");
        let back: AnchoredHead = serde_json::from_str(&json).unwrap();
        assert_eq!(back, anchor);
        let short = json.replace(&hex(&anchor.root), "abcd");
        assert!(serde_json::from_str::<AnchoredHead>(&short).is_err());
        let odd = json.replace(&hex(&anchor.root), "abc");
        assert!(serde_json::from_str::<AnchoredHead>(&odd).is_err());
    }
}
