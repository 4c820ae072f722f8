//! The supervisor's policy as transcripts: inputs in, the actions it asks for out.

use super::*;

const T0: Duration = Duration::from_secs(100);

fn id(text: &str) -> NodeId {
    NodeId::new(text).expect("id")
}

fn supervisor(volatile: bool) -> Supervisor {
    let config = SupervisorConfig {
        node_id: id("n1"),
        raft_addr: "n1:4002".into(),
        reap_after: Duration::from_secs(5),
        volatile,
        read_only: false,
    };
    Supervisor::new(config, Stored::default(), false, T0)
}

/// The removal of `n`, asking nobody first.
fn remove(n: &str) -> Action {
    Action::Remove {
        id: id(n),
        unless_answering_at: None,
    }
}

/// The removal of `n`, unless the node at its address (`http://n:4001`) answers as `n`.
fn remove_unless_answering(n: &str) -> Action {
    Action::Remove {
        id: id(n),
        unless_answering_at: Some(format!("http://{n}:4001")),
    }
}

fn directive(decision: Decision) -> Directive {
    Directive {
        decision,
        cluster_id: None,
        formation: None,
        acked: Vec::new(),
        voters: Vec::new(),
    }
}

fn join() -> Decision {
    Decision::Join {
        targets: vec!["10.0.0.2:4002".into()],
        cluster_id: None,
        voter: true,
    }
}

fn drain(sup: &mut Supervisor) -> Vec<Action> {
    std::iter::from_fn(|| sup.poll_action()).collect()
}

fn starts(actions: &[Action]) -> usize {
    actions
        .iter()
        .filter(|a| matches!(a, Action::Start { .. }))
        .count()
}

fn status(voter: bool, leader: Option<&str>, peers: u64) -> Status {
    Status {
        leader: leader.map(id),
        leads: leader == Some("n1"),
        term: 1,
        voter,
        num_peers: peers,
    }
}

fn secs(n: u64) -> Duration {
    T0 + Duration::from_secs(n)
}

/// Starts rqlited for `decision` at `at` and answers the start.
fn started(sup: &mut Supervisor, decision: Decision, at: Duration) -> Vec<Action> {
    sup.handle_directive(directive(decision), at);
    let mut actions = drain(sup);
    assert_eq!(starts(&actions), 1, "{actions:?}");
    sup.handle_started(Ok(()), at);
    actions.extend(drain(sup));
    actions
}

#[test]
fn a_bootstrap_starts_rqlited_once_with_every_founder_and_commits_once_it_is_a_voter() {
    let mut sup = supervisor(false);
    let founders = vec!["10.0.0.1:4002".to_string(), "10.0.0.2:4002".to_string()];
    let mut bootstrap = directive(Decision::Bootstrap {
        cluster_id: ClusterId(7),
        expect: 2,
        targets: founders.clone(),
    });
    bootstrap.cluster_id = Some(ClusterId(7));
    bootstrap.formation = Some(2);
    sup.handle_directive(bootstrap.clone(), T0);
    let actions = drain(&mut sup);
    assert!(
        matches!(&actions[..], [Action::Persist(s), Action::Start { join, bootstrap_expect: Some(2), peers_json, voter: true }]
            if s.cluster_id == Some(7) && s.formation == Some(2) && *join == founders && peers_json.is_empty()),
        "the binding is kept before the start: {actions:?}"
    );
    sup.handle_started(Ok(()), T0);
    assert_eq!(
        drain(&mut sup),
        vec![Action::Report(Report::Db(DbState::Starting))]
    );
    sup.handle_directive(bootstrap, secs(1));
    assert_eq!(drain(&mut sup), vec![], "running already");
    assert!(!sup.stored().committed);
    sup.handle_poll(false, Some(status(true, None, 1)), secs(2));
    let actions = drain(&mut sup);
    assert!(
        sup.stored().committed,
        "a voter's state is data: {actions:?}"
    );
    assert_eq!(sup.stored().formation, None, "and the formation is over");
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::Persist(s) if s.committed))
    );
}

#[test]
fn a_start_that_fails_is_retried_with_a_backoff_that_doubles_to_thirty_seconds() {
    let mut sup = supervisor(false);
    sup.handle_directive(directive(join()), T0);
    let mut at = T0;
    let mut waits = Vec::new();
    for _ in 0..8 {
        assert_eq!(starts(&drain(&mut sup)), 1);
        sup.handle_started(Err("no such file".into()), at);
        let failed = drain(&mut sup);
        assert_eq!(
            failed,
            vec![Action::Report(Report::StartFailed("no such file".into()))]
        );
        // Its timer every 100 ms until it starts again.
        let from = at;
        loop {
            at += Duration::from_millis(100);
            sup.handle_timeout(at);
            if sup.starting.is_some() {
                break;
            }
            assert!(drain(&mut sup).is_empty());
        }
        waits.push((at - from).as_millis() / 100 * 100);
    }
    assert_eq!(
        waits,
        vec![1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
    );
}

#[test]
fn an_rqlited_that_ran_a_minute_restarts_after_the_shortest_backoff() {
    let mut sup = supervisor(false);
    for at in [T0, secs(1), secs(4)] {
        // Two quick crashes: 1 s, then 2 s.
        started(&mut sup, join(), at);
        sup.handle_exit("exit code 1".into(), at);
        drain(&mut sup);
    }
    assert_eq!(sup.next_start, secs(4) + Duration::from_secs(4));
    started(&mut sup, join(), secs(8));
    sup.handle_exit("exit code 1".into(), secs(70));
    assert_eq!(
        sup.next_start,
        secs(71),
        "a minute's run resets the backoff"
    );
}

#[test]
fn a_leaderless_member_is_restarted_with_join_only_after_both_waits() {
    let mut sup = supervisor(false);
    started(&mut sup, join(), T0);
    // A member without a leader from the start.
    for s in 1..=14 {
        sup.handle_poll(false, Some(status(true, None, 2)), secs(s));
        assert_eq!(starts(&drain(&mut sup)), 0, "not yet at {s} s");
    }
    sup.handle_poll(false, Some(status(true, None, 2)), secs(15));
    let actions = drain(&mut sup);
    assert_eq!(
        actions.first(),
        Some(&Action::Stop(StopWhy::Rejoin {
            leader: "10.0.0.2:4002".into()
        })),
        "{actions:?}"
    );
    assert_eq!(starts(&actions), 1, "restarted with -join: {actions:?}");
}

#[test]
fn a_member_that_found_its_leader_again_is_not_restarted() {
    let mut sup = supervisor(false);
    started(&mut sup, join(), T0);
    for s in 1..=30 {
        let leader = if s % 9 == 0 { Some("n2") } else { None };
        sup.handle_poll(false, Some(status(true, leader, 2)), secs(s));
        assert_eq!(starts(&drain(&mut sup)), 0, "at {s} s");
    }
}

#[test]
fn a_formation_given_up_stops_its_rqlited_and_a_committed_one_is_kept() {
    let mut sup = supervisor(false);
    let mut forming = directive(Decision::Bootstrap {
        cluster_id: ClusterId(7),
        expect: 3,
        targets: vec!["10.0.0.1:4002".into()],
    });
    forming.cluster_id = Some(ClusterId(7));
    forming.formation = Some(3);
    sup.handle_directive(forming.clone(), T0);
    drain(&mut sup);
    sup.handle_started(Ok(()), T0);
    drain(&mut sup);
    let mut elsewhere = directive(join());
    elsewhere.cluster_id = Some(ClusterId(9));
    sup.handle_directive(elsewhere.clone(), secs(1));
    let actions = drain(&mut sup);
    assert!(
        actions.contains(&Action::Stop(StopWhy::FormationGivenUp(ClusterId(7)))),
        "{actions:?}"
    );
    assert_eq!(starts(&actions), 1, "and joins the other cluster instead");

    // Committed (a voter of the formed cluster): nothing is given up.
    let mut sup = supervisor(false);
    sup.handle_directive(forming, T0);
    drain(&mut sup);
    sup.handle_started(Ok(()), T0);
    sup.handle_poll(false, Some(status(true, None, 2)), secs(1));
    drain(&mut sup);
    sup.handle_directive(elsewhere, secs(2));
    let actions = drain(&mut sup);
    assert!(
        !actions.iter().any(|a| matches!(a, Action::Stop(_))),
        "{actions:?}"
    );
}

#[test]
fn data_is_wiped_only_in_volatile_mode_and_the_node_id_stays() {
    let wipe = Decision::Wipe(crate::coordinator::Split {
        mine: Some(ClusterId(1)),
        theirs: ClusterId(2),
    });
    let mut sup = supervisor(false);
    started(&mut sup, join(), T0);
    sup.handle_directive(directive(wipe.clone()), secs(1));
    assert!(
        !drain(&mut sup)
            .iter()
            .any(|a| matches!(a, Action::Wipe | Action::Stop(_))),
        "never without --volatile"
    );

    let mut sup = supervisor(true);
    sup.stored.set_node_id(&id("n1"));
    started(&mut sup, join(), T0);
    sup.handle_directive(directive(wipe), secs(1));
    let actions = drain(&mut sup);
    assert_eq!(actions[0], Action::Stop(StopWhy::Wipe));
    assert!(actions.contains(&Action::Wipe), "{actions:?}");
    sup.handle_wiped(true);
    let actions = drain(&mut sup);
    assert!(
        matches!(&actions[..], [Action::Persist(s), Action::Report(Report::Wiped)]
            if *s == Stored { node_id: Some(id("n1")), ..Stored::default() }),
        "{actions:?}"
    );
}

#[test]
fn a_resume_with_every_voter_moved_starts_with_peers_json() {
    let mut sup = supervisor(false);
    let peers = vec![(id("n1"), "10.0.1.1:4002".to_string())];
    let actions = started(
        &mut sup,
        Decision::Resume {
            join: Vec::new(),
            peers: peers.clone(),
        },
        T0,
    );
    assert!(
        actions.contains(&Action::Start {
            join: Vec::new(),
            bootstrap_expect: None,
            peers_json: peers,
            voter: true,
        }),
        "{actions:?}"
    );
}

fn listed(ids: &[&str]) -> Vec<Listed> {
    ids.iter()
        .map(|n| Listed {
            id: id(n),
            addr: format!("{n}:4002"),
            voter: true,
            // Dead ones in these tests are unreachable, as they would be to rqlited.
            reachable: false,
            api_addr: String::new(),
        })
        .collect()
}

#[test]
fn the_leader_removes_one_dead_voter_at_a_time_and_waits_for_it_to_show() {
    let mut sup = supervisor(false);
    started(&mut sup, join(), T0);
    let mut membership = Membership::default();
    for (n, down) in [
        ("n2", None),
        ("n3", None),
        ("n4", Some(T0)),
        ("n5", Some(secs(1))),
    ] {
        membership.members.insert(id(n), down);
    }
    sup.set_membership(membership, secs(10));
    sup.handle_poll(true, Some(status(true, Some("n1"), 4)), secs(10));
    let actions = drain(&mut sup);
    assert!(
        actions.contains(&Action::List(Listing::Reap)),
        "{actions:?}"
    );
    let five = listed(&["n1", "n2", "n3", "n4", "n5"]);
    sup.handle_listing(Listing::Reap, &five, secs(10));
    assert_eq!(
        drain(&mut sup),
        vec![remove("n4")],
        "the longest dead first"
    );
    sup.handle_removed(id("n4"), Removal::Removed, secs(10));
    assert_eq!(
        drain(&mut sup),
        vec![Action::Report(Report::Removed(id("n4")))]
    );
    // Still listed: no second removal until it shows.
    sup.handle_listing(Listing::Reap, &five, secs(12));
    assert_eq!(drain(&mut sup), vec![]);
    sup.handle_listing(Listing::Reap, &listed(&["n1", "n2", "n3", "n5"]), secs(14));
    assert_eq!(drain(&mut sup), vec![remove("n5")]);
}

/// Right after a partition heals Raft hears from the far side before gossip does: a voter that
/// the leader's rqlited reaches is alive, whatever gossip last said — unless another node now
/// holds its address and answers for it.
#[test]
fn a_voter_the_leaders_rqlited_reaches_is_never_removed_on_gossips_word() {
    let mut sup = supervisor(false);
    started(&mut sup, join(), T0);
    let mut membership = Membership::default();
    for (n, down) in [("n2", None), ("n3", Some(T0)), ("n4", Some(T0))] {
        membership.members.insert(id(n), down);
    }
    sup.set_membership(membership.clone(), secs(60));
    let mut four = listed(&["n1", "n2", "n3", "n4"]);
    for n in &mut four {
        n.reachable = true;
    }
    sup.handle_listing(Listing::Reap, &four, secs(60));
    assert_eq!(drain(&mut sup), vec![], "every voter answers rqlited");
    four[3].reachable = false;
    sup.handle_listing(Listing::Reap, &four, secs(60));
    assert_eq!(
        drain(&mut sup),
        vec![remove("n4")],
        "the one rqlited cannot reach goes"
    );
    sup.handle_removed(id("n4"), Removal::Failed, secs(60));
    drain(&mut sup);
    // n3's address now belongs to n9: what answers there is not n3.
    membership.raft_addrs.insert("n3:4002".into(), id("n9"));
    sup.set_membership(membership, secs(61));
    sup.handle_listing(Listing::Reap, &four[..3], secs(61));
    assert_eq!(drain(&mut sup), vec![remove("n3")]);
}

/// The leader `n1` of voters `n2`–`n4`, all alive in gossip with `n9`, which (from `claim` on)
/// advertises `n4`'s Raft address, up since 9 s; rqlited reaches every listed address, and
/// each gave its HTTP address `http://<id>:4001`. Returns the supervisor, its listing and the
/// membership, so that a test can add the claim.
fn claimed_address() -> (Supervisor, Vec<Listed>, Membership) {
    let mut sup = supervisor(false);
    started(&mut sup, join(), T0);
    let mut membership = Membership::default();
    for n in ["n2", "n3", "n4", "n9"] {
        membership.members.insert(id(n), None);
    }
    sup.set_membership(membership.clone(), T0);
    let mut listing = listed(&["n1", "n2", "n3", "n4"]);
    for n in &mut listing {
        n.reachable = true;
        n.api_addr = format!("http://{}:4001", n.id);
    }
    (sup, listing, membership)
}

/// The leader polls at `at`: did it ask for a listing to reap from?
fn reap_asked(sup: &mut Supervisor, at: Duration) -> bool {
    sup.handle_poll(true, Some(status(true, Some("n1"), 3)), at);
    drain(sup).contains(&Action::List(Listing::Reap))
}

/// Docker hands a killed container's address to the next one at once: the old voter is still
/// alive in gossip (its suspicion has not run out) while the new member, up since, advertises
/// its address and cannot join until it is gone. It goes at once — unless it answers at its
/// address as itself (the driver asks first); the new member, and a live voter whose address
/// nobody else claims, stay.
#[test]
fn a_voter_alive_in_gossip_whose_address_a_newer_member_holds_goes_at_once() {
    let (mut sup, listing, mut membership) = claimed_address();
    assert!(
        reap_asked(&mut sup, secs(10)),
        "the leader looks every REAP_EVERY"
    );
    sup.handle_listing(Listing::Reap, &listing, secs(10));
    assert_eq!(drain(&mut sup), vec![], "nobody else claims an address");
    assert!(
        !reap_asked(&mut sup, secs(11)),
        "and not again a second later"
    );

    membership.raft_addrs.insert("n4:4002".into(), id("n9"));
    membership.superseded.insert(id("n4"), secs(9));
    let seen = secs(11) + Duration::from_millis(300);
    sup.set_membership(membership, seen);
    assert_eq!(
        sup.poll_timeout(),
        seen,
        "a newly superseded member: the leader polls at once, not a second later"
    );
    assert!(
        reap_asked(&mut sup, seen),
        "and looks for a removal at that poll"
    );
    sup.handle_listing(Listing::Reap, &listing, seen);
    assert_eq!(
        drain(&mut sup),
        vec![remove_unless_answering("n4")],
        "the stale claim goes without waiting for gossip's verdict, unless n4 answers there"
    );
    sup.handle_removed(id("n4"), Removal::Removed, seen);
    assert_eq!(
        drain(&mut sup),
        vec![Action::Report(Report::Removed(id("n4")))],
        "n9 answered there: n4 was removed"
    );
}

/// A scale-up in Docker: a new container gets the IP of a member gossip already sees down, and
/// its join waits until the configuration no longer gives that address to the dead member. The
/// leader looks when the new member's claim arrives, not at its next poll and look; the dead
/// member goes at once, reap-after or not.
#[test]
fn a_dead_members_address_newly_claimed_makes_the_leader_look_at_once() {
    let mut sup = supervisor(false);
    started(&mut sup, join(), T0);
    let mut membership = Membership::default();
    for (n, down) in [("n2", None), ("n3", None), ("n4", Some(secs(9)))] {
        membership.members.insert(id(n), down);
    }
    for n in ["n1", "n2", "n3"] {
        membership.raft_addrs.insert(format!("{n}:4002"), id(n));
    }
    sup.set_membership(membership.clone(), secs(9));
    assert!(reap_asked(&mut sup, secs(10)), "the first look");
    let four = listed(&["n1", "n2", "n3", "n4"]);
    sup.handle_listing(Listing::Reap, &four, secs(10));
    assert_eq!(drain(&mut sup), vec![], "n4 has been down 1 s of 5");

    membership.members.insert(id("n9"), None);
    membership.raft_addrs.insert("n4:4002".into(), id("n9"));
    let seen = secs(10) + Duration::from_millis(300);
    sup.set_membership(membership, seen);
    assert_eq!(sup.poll_timeout(), seen, "the leader polls at once");
    assert!(reap_asked(&mut sup, seen), "and looks");
    sup.handle_listing(Listing::Reap, &four, seen);
    assert_eq!(drain(&mut sup), vec![remove("n4")]);
}

/// The leader alone looks for removals: a follower that sees a member superseded keeps its
/// polls as they were.
#[test]
fn a_follower_that_sees_a_member_superseded_polls_no_sooner() {
    let (mut sup, _, mut membership) = claimed_address();
    sup.handle_poll(true, Some(status(true, Some("n2"), 3)), secs(10));
    drain(&mut sup);
    let due = sup.poll_timeout();
    assert!(due > secs(10), "the next poll is a while off: {due:?}");
    membership.raft_addrs.insert("n4:4002".into(), id("n9"));
    membership.superseded.insert(id("n4"), secs(9));
    sup.set_membership(membership, secs(10) + Duration::from_millis(300));
    assert_eq!(sup.poll_timeout(), due);
}

/// The other side of the same rule: without a key anybody can gossip, and a stranger's card
/// that claims a live voter's Raft address made the leader remove it at once. Now the voter
/// answers at its address as itself, and stays while gossip's claim stands; the reaper asks
/// again only after `ANSWERED_HOLDS`.
#[test]
fn a_voter_that_answers_at_its_address_as_itself_stays_whatever_gossip_claims() {
    let (mut sup, listing, mut membership) = claimed_address();
    membership.raft_addrs.insert("n4:4002".into(), id("n9"));
    membership.superseded.insert(id("n4"), secs(9));
    sup.set_membership(membership, secs(10));
    assert!(reap_asked(&mut sup, secs(10)));
    sup.handle_listing(Listing::Reap, &listing, secs(10));
    let asked = remove_unless_answering("n4");
    assert_eq!(drain(&mut sup), vec![asked.clone()]);
    sup.handle_removed(id("n4"), Removal::AnsweredThere, secs(10));
    assert_eq!(drain(&mut sup), vec![], "nothing removed, nothing reported");

    let mut at = secs(10);
    let mut asked_again = None;
    let mut first_look_after = None;
    while asked_again.is_none() && at < secs(30) {
        at += Duration::from_secs(1);
        if reap_asked(&mut sup, at) {
            sup.handle_listing(Listing::Reap, &listing, at);
            let actions = drain(&mut sup);
            if at < secs(10) + ANSWERED_HOLDS {
                assert_eq!(actions, vec![], "at {:?} after the answer", at - secs(10));
            } else {
                first_look_after.get_or_insert(at - secs(10));
                if actions == vec![asked.clone()] {
                    asked_again = Some(at - secs(10));
                }
            }
        }
    }
    assert!(
        first_look_after.is_some(),
        "the leader looked after ANSWERED_HOLDS"
    );
    assert_eq!(
        asked_again, first_look_after,
        "asked again at the first look once ANSWERED_HOLDS has run"
    );
}

/// Chaos (a scale-up 3.4 s): a stale rumour had a dead member alive at a live voter's
/// address, so the leader's look picked that voter first; it answered there as itself and
/// stayed, but the dead leader whose address a new container held waited for the next look,
/// `REAP_EVERY` later, and the newcomer's join with it. A claim found false frees the look at
/// once. Both sides: the voter that answered is not asked about again.
#[test]
fn a_claim_found_false_lets_the_leader_look_again_at_once() {
    let (mut sup, mut listing, mut membership) = claimed_address();
    // n4 alive, its address claimed by n9 (falsely); n5 dead, its address held by n10.
    membership.raft_addrs.insert("n4:4002".into(), id("n9"));
    membership.superseded.insert(id("n4"), secs(8));
    membership.members.insert(id("n5"), Some(secs(9)));
    membership.members.insert(id("n10"), None);
    membership.raft_addrs.insert("n5:4002".into(), id("n10"));
    listing.extend(listed(&["n5"]));
    sup.set_membership(membership, secs(10));
    assert!(reap_asked(&mut sup, secs(10)));
    sup.handle_listing(Listing::Reap, &listing, secs(10));
    assert_eq!(
        drain(&mut sup),
        vec![remove_unless_answering("n4")],
        "superseded the longest: looked at first"
    );
    let answered = secs(10) + Duration::from_millis(40);
    sup.handle_removed(id("n4"), Removal::AnsweredThere, answered);
    assert_eq!(sup.poll_timeout(), answered, "the leader polls at once");
    assert!(reap_asked(&mut sup, answered), "and looks again");
    sup.handle_listing(Listing::Reap, &listing, answered);
    assert_eq!(drain(&mut sup), vec![remove("n5")], "n4 stays; n5 goes");
}

#[test]
fn the_member_up_last_holds_an_address_and_this_node_its_own() {
    let claim = |since: u64, n: &str, addr: &str| (secs(since), id(n), addr.to_string());
    let (holders, superseded) = messages::hold_addresses(
        (&"a:4002".to_string(), &id("n1")),
        vec![
            claim(1, "n4", "b:4002"),
            claim(5, "n9", "b:4002"),
            claim(3, "n2", "c:4002"),
            claim(7, "n7", "a:4002"),
            claim(4, "n5", "d:4002"),
            claim(4, "n3", "d:4002"),
        ],
    );
    let holder = |addr: &str| holders.get(addr).map(NodeId::as_str);
    assert_eq!(
        holder("a:4002"),
        Some("n1"),
        "this node's own, whoever claims it"
    );
    assert_eq!(holder("b:4002"), Some("n9"), "the later of two");
    assert_eq!(holder("c:4002"), Some("n2"), "an address claimed once");
    assert_eq!(
        holder("d:4002"),
        Some("n5"),
        "a tie: the larger id, on every node"
    );
    let stale: Vec<(&str, Duration)> = superseded
        .iter()
        .map(|(n, since)| (n.as_str(), *since))
        .collect();
    assert_eq!(
        stale,
        vec![("n3", secs(4)), ("n4", secs(5)), ("n7", secs(7))],
        "each since its holder came up (its own claim, on this node's address)"
    );
}

/// Chaos finding: a leader resumed at a new address without `-join` kept its old one in the
/// configuration, and the replica that got that address could never join.
#[test]
fn a_node_listed_at_an_old_address_rejoins_while_the_others_hold_a_majority() {
    let node = |n: &str, addr: &str, reachable: bool| Listed {
        id: id(n),
        addr: addr.into(),
        voter: true,
        reachable,
        api_addr: String::new(),
    };
    let stale = |others_reachable: [bool; 2]| {
        vec![
            node("n1", "old:4002", true),
            node("n2", "n2:4002", others_reachable[0]),
            node("n3", "n3:4002", others_reachable[1]),
        ]
    };
    let mut sup = supervisor(false);
    started(&mut sup, join(), T0);
    let restarts = |sup: &mut Supervisor, listing: Listing, nodes: &[Listed], at| {
        sup.handle_listing(listing, nodes, at);
        drain(sup)
            .iter()
            .any(|a| matches!(a, Action::Stop(_) | Action::Start { .. }))
    };
    assert!(
        !restarts(&mut sup, Listing::Voters, &stale([true, true]), secs(10)),
        "not within REJOIN_NOT_BEFORE of a start"
    );
    assert!(
        !restarts(&mut sup, Listing::Voters, &stale([true, false]), secs(20)),
        "one other of three live: stopping would lose the majority"
    );
    let mut current = stale([true, true]);
    current[0].addr = "n1:4002".into();
    assert!(
        !restarts(&mut sup, Listing::Reap, &current, secs(20)),
        "listed at its own address: nothing to mend"
    );
    sup.handle_listing(Listing::Voters, &stale([true, true]), secs(20));
    let actions = drain(&mut sup);
    assert!(
        actions.contains(&Action::Stop(StopWhy::StaleAddress {
            listed: "old:4002".into()
        })),
        "{actions:?}"
    );
    assert!(
        actions.contains(&Action::Start {
            join: vec!["n2:4002".into(), "n3:4002".into()],
            bootstrap_expect: None,
            peers_json: Vec::new(),
            voter: true,
        }),
        "{actions:?}"
    );
}

#[test]
fn a_voter_never_seen_in_gossip_counts_as_down_since_the_node_started() {
    let mut sup = supervisor(false);
    started(&mut sup, join(), T0);
    let mut membership = Membership::default();
    membership.members.insert(id("n2"), None);
    sup.set_membership(membership, secs(4));
    let three = listed(&["n1", "n2", "ghost"]);
    sup.handle_listing(Listing::Reap, &three, secs(4));
    assert_eq!(
        drain(&mut sup),
        vec![],
        "not yet reap-after since the start"
    );
    sup.handle_listing(Listing::Reap, &three, secs(5));
    assert_eq!(drain(&mut sup), vec![remove("ghost")]);
}

#[test]
fn voters_are_recorded_when_their_count_changes_and_every_five_seconds() {
    let mut sup = supervisor(false);
    started(&mut sup, join(), T0);
    let lists = |actions: &[Action]| {
        actions
            .iter()
            .filter(|a| **a == Action::List(Listing::Voters))
            .count()
    };
    sup.handle_poll(true, Some(status(true, Some("n2"), 2)), secs(1));
    assert_eq!(lists(&drain(&mut sup)), 1, "due at the first healthy poll");
    sup.handle_listing(Listing::Voters, &listed(&["n1", "n2", "n3"]), secs(1));
    let actions = drain(&mut sup);
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::Report(Report::Voters(v)) if v.len() == 3)),
        "{actions:?}"
    );
    sup.handle_poll(true, Some(status(true, Some("n2"), 2)), secs(2));
    assert_eq!(lists(&drain(&mut sup)), 0, "same count, not due");
    sup.handle_poll(true, Some(status(true, Some("n2"), 3)), secs(3));
    assert_eq!(lists(&drain(&mut sup)), 1, "the count changed");
    sup.handle_poll(true, Some(status(true, Some("n2"), 3)), secs(8));
    assert_eq!(lists(&drain(&mut sup)), 1, "five seconds passed");
}

#[test]
fn the_voters_the_node_adopted_are_persisted_when_none_are_stored_and_never_over_a_listing() {
    let mut sup = supervisor(false);
    let founders = vec![
        (id("n1"), "10.0.0.1:4002".to_string()),
        (id("n2"), "10.0.0.2:4002".to_string()),
    ];
    let mut formed = directive(Decision::Run);
    formed.cluster_id = Some(ClusterId(7));
    formed.voters = founders.clone();
    sup.handle_directive(formed.clone(), T0);
    let actions = drain(&mut sup);
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::Persist(s) if s.voters() == founders)),
        "{actions:?}"
    );
    assert!(
        !actions
            .iter()
            .any(|a| matches!(a, Action::Report(Report::Voters(_)))),
        "the node has them already: {actions:?}"
    );
    // A listing records other voters; a directive still naming the founders does not undo it.
    started(&mut sup, join(), secs(1));
    let listed = [
        Listed {
            id: id("n1"),
            addr: "10.0.0.1:4002".into(),
            voter: true,
            reachable: true,
            api_addr: String::new(),
        },
        Listed {
            id: id("n3"),
            addr: "10.0.0.3:4002".into(),
            voter: true,
            reachable: true,
            api_addr: String::new(),
        },
    ];
    sup.handle_listing(Listing::Voters, &listed, secs(2));
    drain(&mut sup);
    sup.handle_directive(formed, secs(3));
    drain(&mut sup);
    let recorded: Vec<NodeId> = sup.stored().voters().into_iter().map(|(i, _)| i).collect();
    assert_eq!(recorded, vec![id("n1"), id("n3")]);
}

#[test]
fn a_started_rqlited_that_never_answers_is_polled_fast_only_at_first() {
    // Credentials refused or a certificate rq4d cannot verify: no `/status` ever comes back.
    // Polled every POLL_FIRST_ANSWER for good, that would be 50 requests a second.
    let mut sup = supervisor(false);
    let at = T0;
    started(&mut sup, join(), at);
    let mut now = sup.poll_timeout();
    assert_eq!(now, at + POLL_FIRST_ANSWER);
    while now < at + FIRST_ANSWER_WITHIN {
        sup.handle_timeout(now);
        assert_eq!(drain(&mut sup), vec![Action::Poll]);
        sup.handle_poll(false, None, now);
        drain(&mut sup);
        let next = sup.poll_timeout();
        assert!(
            next <= now + POLL_FIRST_ANSWER,
            "fast while young: {next:?}"
        );
        now = next;
    }
    sup.handle_timeout(now);
    drain(&mut sup);
    sup.handle_poll(false, None, now);
    drain(&mut sup);
    assert_eq!(
        sup.poll_timeout(),
        now + POLL_STARTING,
        "past the bound: the ordinary pace"
    );
}

#[test]
fn the_timer_asks_for_polls_while_rqlited_runs_and_only_the_backoff_while_it_does_not() {
    let mut sup = supervisor(false);
    sup.handle_directive(directive(Decision::Wait(crate::Waiting::Starting)), T0);
    drain(&mut sup);
    // Nothing runs: the timer acts on the directive, asks no poll, and never falls behind.
    for _ in 0..5 {
        let at = sup.poll_timeout();
        sup.handle_timeout(at);
        assert!(drain(&mut sup).is_empty());
        assert!(sup.poll_timeout() > at, "the next timeout is later");
    }
    // Running: each due timeout asks for one poll — very often until rqlited first answers,
    // often while it is not ready, rarely once it is.
    let at = sup.poll_timeout();
    started(&mut sup, join(), at);
    let due = sup.poll_timeout();
    assert_eq!(
        due,
        at + POLL_FIRST_ANSWER,
        "the first poll comes soon after the start"
    );
    sup.handle_timeout(due);
    assert_eq!(drain(&mut sup), vec![Action::Poll]);
    assert_eq!(sup.poll_timeout(), due + POLL_FIRST_ANSWER);
    sup.handle_poll(false, None, due);
    drain(&mut sup);
    assert_eq!(
        sup.poll_timeout(),
        due + POLL_FIRST_ANSWER,
        "no answer yet: soon again"
    );
    let due = sup.poll_timeout();
    sup.handle_timeout(due);
    assert_eq!(drain(&mut sup), vec![Action::Poll]);
    sup.handle_poll(false, Some(status(false, None, 0)), due);
    drain(&mut sup);
    assert_eq!(
        sup.poll_timeout(),
        due + POLL_STARTING,
        "answered, not ready: less often"
    );
    sup.handle_timeout(due + POLL_STARTING / 2);
    assert!(drain(&mut sup).is_empty(), "not due yet");
    sup.handle_poll(true, Some(status(true, Some("n2"), 2)), due);
    drain(&mut sup);
    assert_eq!(sup.poll_timeout(), due + POLL_READY);
    // It exits: the restart is due after the backoff, and made then.
    sup.handle_exit("exit code 1".into(), due);
    drain(&mut sup);
    assert_eq!(sup.poll_timeout(), due + BACKOFF_MIN.min(POLL_READY));
    let restart = due + BACKOFF_MIN;
    while sup.poll_timeout() < restart {
        let at = sup.poll_timeout();
        sup.handle_timeout(at);
        assert_eq!(starts(&drain(&mut sup)), 0, "no restart before the backoff");
    }
    sup.handle_timeout(sup.poll_timeout());
    assert_eq!(
        starts(&drain(&mut sup)),
        1,
        "restarted when the backoff expired"
    );
}

fn non_voter_join() -> Decision {
    Decision::Join {
        targets: vec!["10.0.0.2:4002".into()],
        cluster_id: None,
        voter: false,
    }
}

fn change_role(voter: bool) -> Decision {
    Decision::ChangeRole {
        voter,
        targets: vec!["10.0.0.2:4002".into()],
        cluster_id: None,
    }
}

fn start_roles(actions: &[Action]) -> Vec<bool> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Start { voter, .. } => Some(*voter),
            _ => None,
        })
        .collect()
}

#[test]
fn a_non_voter_that_sees_its_leader_is_committed_as_one_and_resumes_as_one() {
    let mut sup = supervisor(false);
    let actions = started(&mut sup, non_voter_join(), T0);
    assert_eq!(
        start_roles(&actions),
        vec![false],
        "joins with -raft-non-voter"
    );
    sup.handle_poll(true, Some(status(false, Some("n2"), 0)), secs(1));
    let actions = drain(&mut sup);
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::Persist(s) if s.committed && s.non_voter)),
        "a non-voter in the configuration has data, and its role is kept: {actions:?}"
    );
    assert!(sup.stored().has_data(true));
    // It exits; the restart on its data keeps the role.
    sup.handle_exit("killed".into(), secs(2));
    sup.handle_directive(
        directive(Decision::Resume {
            join: vec!["10.0.0.2:4002".into()],
            peers: Vec::new(),
        }),
        secs(10),
    );
    assert_eq!(start_roles(&drain(&mut sup)), vec![false]);
}

#[test]
fn a_change_of_role_leaves_first_then_rejoins_at_once_with_the_other_role() {
    let mut sup = supervisor(false);
    started(&mut sup, non_voter_join(), T0);
    sup.handle_poll(true, Some(status(false, Some("n2"), 0)), secs(1));
    drain(&mut sup);
    sup.handle_directive(directive(change_role(true)), secs(2));
    let actions = drain(&mut sup);
    assert_eq!(actions, vec![Action::Leave], "leaves before anything else");
    // Asked again while the leave is under way: nothing more.
    sup.handle_directive(directive(change_role(true)), secs(2));
    assert!(drain(&mut sup).is_empty());
    sup.handle_left(true, secs(3));
    let actions = drain(&mut sup);
    assert!(
        matches!(&actions[..], [
            Action::Persist(s),
            Action::Stop(StopWhy::ChangeRole { voter: true }),
            ..
        ] if !s.non_voter),
        "{actions:?}"
    );
    assert!(actions.contains(&Action::Report(Report::RoleChanged { voter: true })));
    assert_eq!(start_roles(&actions), vec![true]);
}

#[test]
fn a_change_of_role_waits_for_a_ready_rqlited_and_a_failed_leave_changes_nothing() {
    let mut sup = supervisor(false);
    started(&mut sup, non_voter_join(), T0);
    sup.handle_poll(false, Some(status(false, Some("n2"), 0)), secs(1));
    drain(&mut sup);
    sup.handle_directive(directive(change_role(true)), secs(2));
    assert!(drain(&mut sup).is_empty(), "not caught up: no change yet");
    sup.handle_poll(true, Some(status(false, Some("n2"), 0)), secs(3));
    let actions = drain(&mut sup);
    assert!(actions.contains(&Action::Leave), "{actions:?}");
    sup.handle_left(false, secs(4));
    let actions = drain(&mut sup);
    assert!(
        !actions
            .iter()
            .any(|a| matches!(a, Action::Stop(_) | Action::Start { .. })),
        "{actions:?}"
    );
    assert!(sup.running());
}

#[test]
fn a_read_only_node_never_starts_as_a_voter_nor_changes_role() {
    let config = SupervisorConfig {
        node_id: id("n1"),
        raft_addr: "n1:4002".into(),
        reap_after: Duration::from_secs(5),
        volatile: false,
        read_only: true,
    };
    let mut sup = Supervisor::new(config, Stored::default(), false, T0);
    let actions = started(&mut sup, join(), T0);
    assert_eq!(start_roles(&actions), vec![false]);
    sup.handle_poll(true, Some(status(false, Some("n2"), 0)), secs(1));
    drain(&mut sup);
    sup.handle_directive(directive(change_role(true)), secs(2));
    assert!(!drain(&mut sup).contains(&Action::Leave));
}

#[test]
fn the_leader_reaps_a_dead_non_voter_even_without_a_quorum_to_spare() {
    let mut sup = supervisor(false);
    started(&mut sup, join(), T0);
    // Two of three voters dead: removing either would leave one live voter of two, no
    // majority. The dead non-voter changes no quorum: it goes.
    let mut membership = Membership::default();
    membership.members.insert(id("n2"), Some(T0));
    membership.members.insert(id("n3"), Some(T0));
    membership.members.insert(id("r1"), Some(secs(1)));
    sup.set_membership(membership, secs(10));
    sup.handle_poll(true, Some(status(true, Some("n1"), 2)), secs(10));
    drain(&mut sup);
    let mut nodes = listed(&["n1", "n2", "n3"]);
    nodes.push(Listed {
        id: id("r1"),
        addr: "10.0.0.9:4002".into(),
        voter: false,
        reachable: false,
        api_addr: String::new(),
    });
    sup.handle_listing(Listing::Reap, &nodes, secs(10));
    assert_eq!(drain(&mut sup), vec![remove("r1")]);
}

/// A member started with `-join` at T0, whose leader (`10.0.0.2:4002`) gossips its HTTP
/// address (`10.0.0.2:4001`), so that the supervisor can ask it.
fn joined_with_a_leader_at_its_http() -> Supervisor {
    let mut sup = supervisor(false);
    let mut membership = Membership::default();
    membership
        .http_addrs
        .insert("10.0.0.2:4002".into(), "10.0.0.2:4001".into());
    sup.set_membership(membership, T0);
    started(&mut sup, join(), T0);
    sup
}

/// [`joined_with_a_leader_at_its_http`], healthy at 20 s: it has served, and it is past
/// `REJOIN_NOT_BEFORE`.
fn a_member_that_served() -> Supervisor {
    let mut sup = joined_with_a_leader_at_its_http();
    sup.handle_poll(true, Some(status(true, Some("n2"), 2)), secs(20));
    drain(&mut sup);
    sup
}

/// A voter the reaper removed while it was paused (or cut off) comes back to a leader that will
/// never send it anything: it asks the leader's rqlited whether its configuration still holds
/// it, and rejoins at once when it does not — not after `REJOIN_AFTER` (chaos: a pause longer
/// than reap-after took 12 s to recover). One the configuration still holds waits as before.
#[test]
fn a_member_the_leaders_configuration_no_longer_holds_rejoins_at_once() {
    for removed in [true, false] {
        // Healthy until 20 s, leaderless from then on.
        let mut sup = a_member_that_served();
        sup.handle_poll(false, Some(status(true, None, 2)), secs(21));
        let early = drain(&mut sup);
        assert!(
            !early
                .iter()
                .any(|a| matches!(a, Action::AskConfiguration { .. })),
            "not in an election's first seconds: {early:?}"
        );
        sup.handle_poll(false, Some(status(true, None, 2)), secs(23));
        let asks: Vec<Action> = drain(&mut sup)
            .into_iter()
            .filter(|a| !matches!(a, Action::Report(_)))
            .collect();
        assert_eq!(
            asks,
            vec![Action::AskConfiguration {
                http: "10.0.0.2:4001".into()
            }],
            "the leader is asked once leaderless for ASK_CONFIGURATION_EVERY"
        );
        let members = if removed {
            vec![id("n2"), id("n3")]
        } else {
            vec![id("n1"), id("n2"), id("n3")]
        };
        sup.handle_configuration(Some(members), secs(23));
        let actions: Vec<Action> = drain(&mut sup)
            .into_iter()
            .filter(|a| !matches!(a, Action::Report(_)))
            .collect();
        if removed {
            assert_eq!(
                actions.first(),
                Some(&Action::Stop(StopWhy::Removed {
                    leader: "10.0.0.2:4002".into()
                })),
                "{actions:?}"
            );
            assert_eq!(starts(&actions), 1, "restarted with -join: {actions:?}");
            continue;
        }
        assert_eq!(actions, vec![], "still a member: no restart");
        // It asks again every ASK_CONFIGURATION_EVERY, and rejoins only after REJOIN_AFTER.
        let mut asked = 0;
        for s in 24..=30 {
            sup.handle_poll(false, Some(status(true, None, 2)), secs(s));
            let actions = drain(&mut sup);
            if actions
                .iter()
                .any(|a| matches!(a, Action::AskConfiguration { .. }))
            {
                asked += 1;
                sup.handle_configuration(Some(vec![id("n1"), id("n2")]), secs(s));
                assert_eq!(drain(&mut sup), vec![], "still a member at {s} s");
            }
            assert_eq!(starts(&actions), 0, "not yet at {s} s: {actions:?}");
        }
        assert_eq!(asked, 3, "asked again at 25, 27 and 29 s");
        sup.handle_poll(false, Some(status(true, None, 2)), secs(31));
        let actions = drain(&mut sup);
        assert_eq!(starts(&actions), 1, "REJOIN_AFTER passed: {actions:?}");
    }
}

/// Chaos finding: a node cut off longer than reap-after rejoined the moment the partition
/// healed, and the reaper's removal of it, decided just before, committed just after. Its join
/// was over (it had served as a member), so `REJOIN_NOT_BEFORE` protects nothing: it asks the
/// leader and rejoins at once, not 15 s after its start.
#[test]
fn a_member_removed_right_after_its_rejoin_asks_at_once() {
    let mut sup = joined_with_a_leader_at_its_http();
    sup.handle_poll(true, Some(status(true, Some("n2"), 2)), secs(1));
    drain(&mut sup);
    sup.handle_poll(false, Some(status(true, None, 2)), secs(2));
    drain(&mut sup);
    sup.handle_poll(false, Some(status(true, None, 2)), secs(4));
    assert!(
        drain(&mut sup).contains(&Action::AskConfiguration {
            http: "10.0.0.2:4001".into()
        }),
        "asked 4 s after its start: it has served"
    );
    rejoins_once_told_it_was_removed(&mut sup, secs(4));
}

/// Answers the question of the configuration without n1 at `at`: the node must be stopped as
/// removed and started again with `-join`, at once.
fn rejoins_once_told_it_was_removed(sup: &mut Supervisor, at: Duration) {
    sup.handle_configuration(Some(vec![id("n2"), id("n3")]), at);
    let actions = drain(sup);
    assert!(
        actions.contains(&Action::Stop(StopWhy::Removed {
            leader: "10.0.0.2:4002".into()
        })) && starts(&actions) == 1,
        "removed: rejoins at once: {actions:?}"
    );
}

/// Chaos: a follower paused (`docker pause`) for longer than reap-after had been removed; woken,
/// its rqlited heard the leader for a moment (Raft messages queued during the pause), then no
/// more, and the node asked the leader only `ASK_CONFIGURATION_EVERY` after that (4.4 s from the
/// unpause to one cluster). A supervisor whose poll timer fires `FROZEN_AFTER` late polls every
/// `POLL_STARTING` and asks at its first leaderless poll. Both sides: woken on time, the same
/// polls wait as before.
#[test]
fn a_member_woken_from_a_freeze_asks_the_leader_at_its_first_leaderless_poll() {
    for frozen in [true, false] {
        let mut sup = a_member_that_served();
        let due = sup.poll_timeout();
        let woke = if frozen { due + secs(27) - T0 } else { due };
        sup.handle_timeout(woke);
        let actions = drain(&mut sup);
        assert!(actions.contains(&Action::Poll), "{actions:?}");
        assert_eq!(
            actions
                .iter()
                .any(|a| matches!(a, Action::Report(Report::Thawed { .. }))),
            frozen,
            "reported only when late: {actions:?}"
        );
        // rqlited still names the leader it heard before the freeze.
        sup.handle_poll(true, Some(status(true, Some("n2"), 2)), woke);
        drain(&mut sup);
        let next = if frozen { POLL_STARTING } else { POLL_READY };
        assert_eq!(
            sup.poll_timeout(),
            woke + next,
            "polled sooner only after a freeze"
        );
        // Its heartbeat timeout runs out: leaderless.
        let leaderless = woke + Duration::from_millis(1_400);
        sup.handle_poll(false, Some(status(true, None, 2)), leaderless);
        let asked = drain(&mut sup)
            .iter()
            .any(|a| matches!(a, Action::AskConfiguration { .. }));
        assert_eq!(
            asked, frozen,
            "asked at the first leaderless poll only after a freeze"
        );
        if !frozen {
            continue;
        }
        rejoins_once_told_it_was_removed(&mut sup, leaderless);
    }
}

/// The freeze buys one early question, not one per poll: a member the configuration still
/// holds asks again only after `ASK_CONFIGURATION_EVERY`, and once `THAWED_FOR` has passed it
/// polls as a ready member does.
#[test]
fn a_freeze_buys_one_early_question() {
    let mut sup = a_member_that_served();
    let woke = secs(60);
    sup.handle_timeout(woke);
    drain(&mut sup);
    sup.handle_poll(false, Some(status(true, None, 2)), woke);
    assert!(drain(&mut sup).contains(&Action::AskConfiguration {
        http: "10.0.0.2:4001".into()
    }));
    sup.handle_configuration(Some(vec![id("n1"), id("n2")]), woke);
    assert_eq!(drain(&mut sup), vec![], "still a member: nothing to do");
    let soon = woke + POLL_STARTING;
    sup.handle_poll(false, Some(status(true, None, 2)), soon);
    assert!(
        !drain(&mut sup)
            .iter()
            .any(|a| matches!(a, Action::AskConfiguration { .. })),
        "no second early question"
    );
    let later = woke + THAWED_FOR;
    sup.handle_poll(true, Some(status(true, Some("n2"), 2)), later);
    drain(&mut sup);
    assert_eq!(sup.poll_timeout(), later + POLL_READY, "the freeze is over");
}

/// The other side: a member that never served (its join may still be retrying) asks nobody
/// and is not restarted before `REJOIN_NOT_BEFORE`.
#[test]
fn a_member_whose_join_may_still_succeed_asks_nobody() {
    let mut sup = joined_with_a_leader_at_its_http();
    for s in 1..15 {
        sup.handle_poll(false, Some(status(true, None, 2)), secs(s));
        let actions = drain(&mut sup);
        assert!(
            !actions
                .iter()
                .any(|a| matches!(a, Action::AskConfiguration { .. }))
                && starts(&actions) == 0,
            "at {s} s: {actions:?}"
        );
    }
}
