//! The indexed engine (`gatehouse::engine::decide`, `decide_explained`, `allowed_actions`) against
//! the reference evaluator of the main crate's tests, `tests/it/engine_reference.rs`.
//!
//! That file is included whole (see `build.rs`), so the model, the YAML renderer, the reference
//! evaluator, `check` and `shrink` are the ones the test suite maintains. Two ways to a policy set:
//! - the first input byte divisible by 4: the test's own random generator (`gen_set`,
//!   `gen_request`), seeded from the next 8 bytes; a set it generates must compile;
//! - otherwise the set and the requests are built here from the input bytes (`arbitrary`), over the
//!   same vocabulary and by the same rules as the generator, so that small changes to the input make
//!   small changes to the set and coverage guidance works; a set that does not compile is skipped.
//!
//! Every request is checked under the set's strategy with `check(.., every_action = true)`: the
//! decision and deciding rule of `decide` and `decide_explained`, and the set of `allowed_actions`,
//! must be the reference's. A mismatch panics with the set shrunk to the rules that matter.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    reference::run(data);
});

#[allow(dead_code, unused_imports, clippy::all)]
mod reference {
    include!(concat!(env!("OUT_DIR"), "/engine_reference.rs"));

    use arbitrary::{Result as Drawn, Unstructured};

    pub fn run(data: &[u8]) {
        let Some((&mode, rest)) = data.split_first() else {
            return;
        };
        let mut u = Unstructured::new(rest);
        let drawn = if mode % 4 == 0 {
            seeded(&mut u)
        } else {
            structured(&mut u)
        };
        let Ok((set, requests, generated)) = drawn else {
            return;
        };
        let policy = match compile_set(&set) {
            Ok(policy) => policy,
            Err(e) if generated => panic!(
                "the reference's generator made a set that does not compile: {e}\n{}",
                render(&set)
            ),
            Err(_) => return,
        };
        for req in &requests {
            if let Err(why) = check(&policy, &set, req, true) {
                let small = shrink(set.clone(), req, &why);
                let why_small = compile_set(&small)
                    .map(|p| check(&p, &small, req, true).err().unwrap_or_default())
                    .unwrap_or_else(|e| format!("the shrunk set does not compile: {e}"));
                panic!(
                    "{why}\n  request: {req:?}\n  shrunk: {why_small}\n--- shrunk YAML ---\n{}--- full YAML ---\n{}",
                    render(&small),
                    render(&set)
                );
            }
        }
    }

    /// The test's own generator, seeded from the input.
    fn seeded(u: &mut Unstructured<'_>) -> Drawn<(Set, Vec<Req>, bool)> {
        let seed: u64 = u.arbitrary()?;
        let strategy = draw_strategy(u)?;
        let mut rng = StdRng::seed_from_u64(seed);
        let set = Set {
            strategy,
            ..gen_set(&mut rng)
        };
        let requests = (0..8).map(|_| gen_request(&mut rng)).collect();
        Ok((set, requests, true))
    }

    fn draw_strategy(u: &mut Unstructured<'_>) -> Drawn<Option<Strategy>> {
        Ok(match u.choose_index(5)? {
            0 => None,
            i => Some(STRATEGIES[i - 1]),
        })
    }

    fn structured(u: &mut Unstructured<'_>) -> Drawn<(Set, Vec<Req>, bool)> {
        let strategy = draw_strategy(u)?;
        let decls = draw_decls(u)?;
        let count = u.int_in_range(1..=12)?;
        let mut rules = Vec::new();
        for i in 0..count {
            let kinds = draw_sel(u, &KINDS)?;
            let allowed = allowed_for(&kinds, &decls);
            rules.push(Rule {
                name: format!("rule{i}"),
                effect: if u.arbitrary()? {
                    Effect::Allow
                } else {
                    Effect::Deny
                },
                priority: if u.ratio(1, 4)? {
                    None
                } else {
                    Some(u.int_in_range(-3..=3)?)
                },
                kinds,
                id: if u.ratio(1, 4)? {
                    Some(*u.choose(&RULE_IDS)?)
                } else {
                    None
                },
                actions: draw_sel(u, &ACTIONS)?,
                when: if u.ratio(3, 5)? {
                    Some(draw_cond(u, &allowed, 0)?)
                } else {
                    None
                },
                unless: if u.ratio(1, 5)? {
                    Some(draw_cond(u, &allowed, 0)?)
                } else {
                    None
                },
            });
        }
        let set = Set {
            strategy,
            decls,
            rules,
        };
        let count = u.int_in_range(1..=4)?;
        let requests = (0..count)
            .map(|_| draw_request(u))
            .collect::<Drawn<Vec<_>>>()?;
        Ok((set, requests, false))
    }

    fn some(u: &mut Unstructured<'_>, vocabulary: &[&str], max: usize) -> Drawn<Vec<String>> {
        let mut pool: Vec<&str> = vocabulary.to_vec();
        let n = u.int_in_range(1..=max.min(pool.len()))?;
        let mut out = Vec::new();
        for _ in 0..n {
            let i = u.choose_index(pool.len())?;
            out.push(pool.remove(i).to_owned());
        }
        Ok(out)
    }

    fn draw_decls(u: &mut Unstructured<'_>) -> Drawn<Vec<KindDecl>> {
        let mut decls = Vec::new();
        for kind in KINDS {
            if u.ratio(1, 3)? {
                continue;
            }
            let pattern = *u.choose(&[None, Some("{g}:{o}"), Some("{g}:{o**}"), Some("p:{o}")])?;
            let has_o = pattern.is_some();
            let has_g = pattern.is_some_and(|p| p.contains("{g}"));
            let mut owners = vec![
                None,
                Some(Operand::Attribute("owner")),
                Some(Operand::PrincipalId),
            ];
            if has_o {
                owners.push(Some(Operand::Capture("o")));
            }
            let owner = u.choose(&owners)?.clone();
            let mut channels = vec![None, Some(Operand::Attribute("ch"))];
            if has_g {
                channels.push(Some(Operand::Capture("g")));
            }
            let channel = u.choose(&channels)?.clone();
            let actions = if u.ratio(1, 3)? {
                some(u, &["a0", "a3", "d0", "d1"], 2)?
            } else {
                Vec::new()
            };
            decls.push(KindDecl {
                kind,
                pattern,
                owner,
                channel,
                actions,
            });
        }
        Ok(decls)
    }

    fn draw_sel(u: &mut Unstructured<'_>, vocabulary: &[&str]) -> Drawn<Sel> {
        if u.ratio(1, 5)? {
            return Ok(Sel::Any(u.int_in_range(0..=2)?));
        }
        let mut items = some(u, vocabulary, 3)?;
        if u.ratio(1, 20)? {
            items.push(items[0].clone());
        }
        Ok(Sel::Only {
            items,
            single: u.arbitrary()?,
        })
    }

    fn draw_operand(u: &mut Unstructured<'_>, allowed: &Allowed) -> Drawn<Operand> {
        let mut ops = vec![
            Operand::Attribute("a"),
            Operand::Attribute("b"),
            Operand::Attribute("owner"),
            Operand::Context("c"),
            Operand::Id,
            Operand::Kind,
            Operand::Action,
            Operand::PrincipalId,
        ];
        for name in &allowed.captures {
            ops.push(Operand::Capture(name));
        }
        Ok(u.choose(&ops)?.clone())
    }

    fn draw_value(u: &mut Unstructured<'_>, op: &Operand) -> Drawn<String> {
        let pool: &[&str] = match op {
            Operand::Id => &["x:1", "g:u0", "u0", "p:u1", "k:x:y"],
            Operand::Kind => &["k0", "k1", "k9"],
            Operand::Action => &["a0", "a1", "d0", "a9"],
            Operand::PrincipalId => &["u0", "u1", "u2"],
            Operand::Capture(_) => &["g", "x", "u0", "u1", "x:y"],
            _ => &VALUES,
        };
        Ok((*u.choose(pool)?).to_owned())
    }

    fn draw_cond(u: &mut Unstructured<'_>, allowed: &Allowed, depth: u32) -> Drawn<CondMap> {
        let mut keys = vec![
            "roles",
            "users",
            "principal",
            "groups",
            "in",
            "equals",
            "is_principal",
            "refers_to_principal",
        ];
        if allowed.owner {
            keys.push("owner");
        }
        if allowed.channel {
            keys.push("channel_roles");
        }
        if depth < 2 {
            keys.extend(["not", "any", "all"]);
        }
        let count = if u.ratio(3, 4)? { 1 } else { 2 };
        let mut chosen: Vec<&str> = Vec::new();
        for _ in 0..count {
            let key = *u.choose(&keys)?;
            if !chosen.contains(&key) {
                chosen.push(key);
            }
        }
        let mut conds = Vec::new();
        for key in chosen {
            conds.push(match key {
                "roles" => Cond::Roles(some(u, &ROLES, 2)?),
                "users" => Cond::Users(some(u, &USERS[..4], 2)?),
                "groups" => Cond::Groups(some(u, &GROUPS, 2)?),
                "principal" => {
                    Cond::Principal(*u.choose(&["user", "anonymous", "authenticated"])?)
                }
                "channel_roles" => Cond::ChannelRoles(some(u, &CHANNEL_ROLES, 2)?),
                "owner" => Cond::Owner,
                "is_principal" | "refers_to_principal" => {
                    let mut ops = vec![
                        u.choose(&[Operand::Attribute("owner"), Operand::Context("c")])?
                            .clone(),
                    ];
                    if u.ratio(1, 5)? {
                        ops.push(draw_operand(u, allowed)?);
                        ops.dedup();
                    }
                    if key == "is_principal" {
                        Cond::IsPrincipal(ops)
                    } else {
                        Cond::RefersToPrincipal(ops)
                    }
                }
                "in" => {
                    let mut pairs: Vec<(Operand, InValues)> = Vec::new();
                    for _ in 0..u.int_in_range(1..=2)? {
                        let op = draw_operand(u, allowed)?;
                        if pairs.iter().any(|(o, _)| *o == op) {
                            continue;
                        }
                        let values = match u.choose_index(6)? {
                            0 => InValues::One(draw_value(u, &op)?),
                            1 => InValues::Named(*u.choose(&["l0", "l1"])?),
                            _ => InValues::List(
                                (0..u.int_in_range(1..=3)?)
                                    .map(|_| draw_value(u, &op))
                                    .collect::<Drawn<Vec<_>>>()?,
                            ),
                        };
                        pairs.push((op, values));
                    }
                    Cond::In(pairs)
                }
                "equals" => {
                    let op = draw_operand(u, allowed)?;
                    let value = draw_value(u, &op)?;
                    Cond::Equals(vec![(op, value)])
                }
                "not" => Cond::Not(Box::new(draw_cond(u, allowed, depth + 1)?)),
                "any" => Cond::Any(
                    (0..u.int_in_range(1..=3)?)
                        .map(|_| draw_cond(u, allowed, depth + 1))
                        .collect::<Drawn<Vec<_>>>()?,
                ),
                _ => Cond::All(
                    (0..u.int_in_range(1..=2)?)
                        .map(|_| draw_cond(u, allowed, depth + 1))
                        .collect::<Drawn<Vec<_>>>()?,
                ),
            });
        }
        Ok(CondMap(conds))
    }

    fn draw_json(u: &mut Unstructured<'_>, pool: &[&str]) -> Drawn<Option<Value>> {
        Ok(match u.choose_index(8)? {
            0 => None,
            1 => Some(json!("")),
            2 => Some(json!(7)),
            3 => Some(json!(true)),
            4 => Some(json!(["u0", "u1"])),
            _ => Some(json!(*u.choose(pool)?)),
        })
    }

    fn draw_request(u: &mut Unstructured<'_>) -> Drawn<Req> {
        let user = if u.ratio(4, 5)? {
            Some(*u.choose(&USERS)?)
        } else {
            None
        };
        let roles = if user.is_some() && u.arbitrary()? {
            some(u, &["r0", "r1", "r2", "admin", "user", "anonymous"], 2)?
        } else {
            Vec::new()
        };
        let groups = if user.is_some() && u.ratio(2, 5)? {
            some(u, &GROUPS, 2)?
        } else {
            Vec::new()
        };
        let mut channel_roles = BTreeMap::new();
        if user.is_some() {
            for channel in ["ch0", "ch1", "g", "x"] {
                if u.ratio(3, 10)? {
                    channel_roles.insert(
                        channel.to_owned(),
                        (*u.choose(&["cm", "cx", "cy"])?).to_owned(),
                    );
                }
            }
        }
        let kind = (*u.choose(&["k0", "k1", "k2", "k3", "k4", "k5", "k9", "*"])?).to_owned();
        let action = (*u.choose(&["a0", "a1", "a2", "a3", "a4", "a9", "d0", "*"])?).to_owned();
        let user_id = user.unwrap_or("u0");
        let id = if u.ratio(1, 4)? {
            // Free text over the alphabet of the patterns.
            let len = u.int_in_range(0..=16)?;
            (0..len)
                .map(|_| {
                    u.choose(&['x', 'g', 'p', 'k', ':', 'u', '0', '1', 'y'])
                        .copied()
                })
                .collect::<Drawn<String>>()?
        } else {
            match u.choose_index(12)? {
                0 => String::new(),
                1 => "x:".to_owned(),
                2 => "x:1".to_owned(),
                3 => "x:a:b".to_owned(),
                4 => user_id.to_owned(),
                5 => format!("g:{user_id}"),
                6 => format!("p:{}", u.choose(&USERS)?),
                7 => "k:x:y".to_owned(),
                8 => format!("x:{}", u.choose(&USERS)?),
                9 => "g:u0:z".to_owned(),
                10 => ":u1".to_owned(),
                _ => format!("{}:{}", u.choose(&["g", "x", "y"])?, u.choose(&USERS)?),
            }
        };
        let mut attributes = Map::new();
        let owner_pool: Vec<&str> = USERS.iter().copied().chain([user_id, user_id]).collect();
        for (key, pool) in [
            ("owner", owner_pool.as_slice()),
            ("a", &VALUES[..]),
            ("b", &VALUES[..]),
            ("ch", &["ch0", "ch1", "ch2"][..]),
        ] {
            if let Some(v) = draw_json(u, pool)? {
                attributes.insert(key.to_owned(), v);
            }
        }
        let mut context = Map::new();
        let su = format!("SU:{user_id}");
        if let Some(v) = draw_json(u, &[user_id, su.as_str(), "u1", "SU:u2", "v0"])? {
            context.insert("c".to_owned(), v);
        }
        Ok(Req {
            user,
            roles,
            groups,
            channel_roles,
            kind,
            action,
            id,
            attributes,
            context,
        })
    }
}
