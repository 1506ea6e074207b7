//! `keys schedule`: give the ring a root secret from which every node derives a key per period,
//! or replace that root (planned, or at once after a leak).

use std::time::{Duration, SystemTime};

use clap::Args;
use sealed_session::{Key, KeyRing, RotationPolicy, Schedule, SessionConfig};

use super::{FileArg, LockArg};
use crate::failure::{Failure, Kind};
use crate::{output, ring_file};

/// Rotate keys on a schedule, with no writer: every node derives each period's key from a root.
///
/// The ring gets a root secret and a policy. Each node derives the key of every period from the
/// root by itself (HKDF), so the ring moves on with no file ever rewritten: a read-only Secret,
/// an environment variable or a copy on each node rotate alike. The first derived key seals
/// after --lead (distribute the new file within that time); hand-made keys keep opening until
/// the policy retires them. With a schedule already there, --new-root replaces its root in the
/// same staged way (the old root's keys sealing before the new root's first key stay, as
/// hand-made keys, until they retire), and --emergency replaces it at once, dropping every key
/// of the old root (after a leak: their sessions are rejected). Replacing a root keeps the
/// schedule's policy except what a flag changes, and --new-root never retires keys sooner than
/// the old policy did: the old root's keys stay under the new policy, and the sessions they
/// sealed live as long as the old one said.
#[derive(Debug, Args)]
#[command(after_help = crate::EXIT_CODES)]
pub struct ScheduleArgs {
    #[command(flatten)]
    file: FileArg,

    #[command(flatten)]
    lock: LockArg,

    /// How long each key seals [default: 90days; replacing a root: the schedule's].
    #[arg(long, value_name = "DURATION")]
    lifetime: Option<humantime::Duration>,

    /// How long each key is known before it seals: longer than the slowest way the ring
    /// reaches every node (a Secret volume's sync, a rolling deploy) [default: 2days; replacing
    /// a root: the schedule's].
    #[arg(long, value_name = "DURATION")]
    lead: Option<humantime::Duration>,

    /// The servers' absolute session timeout: a key leaves the ring this long (plus twice
    /// --clock-skew) after it stopped sealing [default: the library's, 12h; replacing a root
    /// without this or --clock-skew: the schedule's retirement].
    #[arg(long, value_name = "DURATION")]
    absolute_timeout: Option<humantime::Duration>,

    /// The servers' clock skew allowance; --emergency's first key activates this long before
    /// now, so that a node whose clock is behind has a current key too [default: the library's,
    /// 1m].
    #[arg(long, value_name = "DURATION")]
    clock_skew: Option<humantime::Duration>,

    /// Replace the schedule's root, staged: the new root's first key seals after --lead.
    #[arg(long, conflicts_with = "emergency")]
    new_root: bool,

    /// Replace the schedule's root at once and drop every key of the old one (after a leak).
    #[arg(long)]
    emergency: bool,
}

/// Runs `keys schedule`.
///
/// # Errors
///
/// Key ring (3) when the file cannot be loaded, usage (2) for an invalid policy, refused (4)
/// when the ring has a schedule and neither --new-root nor --emergency was given, I/O (5).
pub fn run(args: ScheduleArgs) -> Result<(), Failure> {
    let path = &args.file.file;
    let lock = ring_file::lock(path, *args.lock.lock_timeout)?;
    let now = SystemTime::now();
    let mut ring = ring_file::load(path, now)?;
    let replacing = ring.schedule().is_some();
    if replacing && !args.new_root && !args.emergency {
        return Err(Failure::new(
            Kind::Refused,
            "the ring has a schedule already; --new-root replaces its root (staged), \
             --emergency at once",
        ));
    }
    let old = ring.clear_schedule();
    let policy = policy(&args, old.as_ref().map(Schedule::policy))?;
    let skew = args.clock_skew.map_or_else(|| SessionConfig::default().clock_skew(), |d| *d);
    // An emergency root seals at once, as a node whose clock is behind by up to the skew sees
    // it too: it would refuse a ring whose every key is still pending (NoActiveKey).
    let epoch = if args.emergency { now.checked_sub(skew) } else { now.checked_add(policy.lead) };
    let epoch = epoch.ok_or_else(|| {
        Failure::new(Kind::Usage, "--lead or --clock-skew is too long: the epoch falls out of time")
    })?;
    if let Some(old) = &old
        && !args.emergency
    {
        keep_old_keys(&mut ring, old, epoch, now)?;
    }
    // The old root's block too: its ids named other secrets, which sessions and logs may still
    // carry (an emergency keeps none of its keys in the ring to keep the block out).
    let mut taken: Vec<_> = ring.keys().map(|key| key.id).collect();
    taken.extend(old.as_ref().map(Schedule::id_base));
    let id_base = Schedule::fresh_id_base(taken.iter().copied());
    let schedule = Schedule::new(Key::generate(), id_base, epoch, policy)
        .map_err(|error| Failure::new(Kind::Usage, error.to_string()))?;
    ring.set_schedule(schedule, now)
        .map_err(|error| Failure::new(Kind::Refused, error.to_string()))?;
    ring_file::write(path, &lock, &ring)?;
    let verb = match (replacing, args.emergency) {
        (false, _) => "scheduled",
        (true, false) => "replaced the root of",
        (true, true) => "replaced at once (emergency) the root of",
    };
    output::print(&format!(
        "{verb} {}: key ids from {id_base}, a new key every {}, each known {} before it seals \
         and retired {} after; first key {id_base} seals from {}\n",
        path.display(),
        days_or_duration(policy.lifetime),
        days_or_duration(policy.lead),
        output::duration(policy.retire_after),
        output::rfc3339(epoch),
    ))
}

/// The policy asked for: each flag given, else the replaced schedule's (a new root changes
/// nothing else unless told to), else the library's defaults. A staged replacement never
/// retires sooner than `old` did: the old root's keys stay in the ring under the new policy,
/// and sessions they sealed live as long as the old policy said (a shorter retirement asked
/// for is raised to it, with a warning).
fn policy(args: &ScheduleArgs, old: Option<RotationPolicy>) -> Result<RotationPolicy, Failure> {
    let base = old.unwrap_or_default();
    let retire_after = if args.absolute_timeout.is_some() || args.clock_skew.is_some() {
        let defaults = SessionConfig::default();
        super::retire_after(
            args.absolute_timeout.map_or_else(|| defaults.absolute_timeout(), |d| *d),
            args.clock_skew.map_or_else(|| defaults.clock_skew(), |d| *d),
        )?
    } else {
        base.retire_after
    };
    let mut policy = RotationPolicy {
        lifetime: args.lifetime.map_or(base.lifetime, |d| *d),
        lead: args.lead.map_or(base.lead, |d| *d),
        retire_after,
    };
    if let Some(old) = old
        && !args.emergency
        && policy.retire_after < old.retire_after
    {
        eprintln!(
            "warning: keys retire {} after they stop sealing, not {}: the old root's keys stay \
             in service under the new policy, and sessions they sealed live as long as the old \
             policy says",
            output::duration(old.retire_after),
            output::duration(policy.retire_after),
        );
        policy.retire_after = old.retire_after;
    }
    Ok(policy)
}

/// Keeps, as hand-made keys, the old root's keys known before the new root's first key seals
/// and activating before it (so no node meets a session under a key it lost); the policy
/// retires them.
fn keep_old_keys(
    ring: &mut KeyRing,
    old: &Schedule,
    epoch: SystemTime,
    now: SystemTime,
) -> Result<(), Failure> {
    let mut with_old = ring.clone();
    with_old
        .set_schedule(old.clone(), now)
        .map_err(|error| Failure::new(Kind::Refused, error.to_string()))?;
    // Every old key known at any time before the new epoch: the ring at `now` and the one just
    // before `epoch` (a pending old key may activate in between). But not one activating at or
    // after the new epoch (the old root's next key, known ahead): as a hand-made key activating
    // after the new root's first key it would seal in its place until the new root's period 1,
    // a whole lifetime later. No node seals with it before it activates, and every node has
    // the new ring by the new epoch (that is what the lead is for), so no session needs it.
    let before = epoch.checked_sub(Duration::from_secs(1)).unwrap_or(epoch);
    for at in [now, before] {
        let view = with_old.at(at);
        let old_keys: Vec<_> =
            view.keys().filter(|info| old.owns(info.id) && info.activates_at < epoch).collect();
        for info in old_keys {
            if ring.contains(info.id) {
                continue;
            }
            let secret = view.secret(info.id).expect("listed keys have secrets").clone();
            ring.insert(info.id, secret, info.created_at, info.activates_at)
                .map_err(|error| Failure::new(Kind::Refused, error.to_string()))?;
        }
    }
    Ok(())
}

/// `90 days` rather than humantime's `2months 29days 2h 52m 48s` (it counts months of 30.44 days).
fn days_or_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    match secs % 86_400 {
        0 if secs > 0 => format!("{} days", secs / 86_400),
        _ => output::duration(duration),
    }
}
