//! The dependency graph: order, ready sets, deletes, cycles.

use std::collections::HashSet;

use spindle_template::Graph;

fn g(edges: &[(&str, &[&str])]) -> Graph {
    Graph::new(edges.iter().map(|(n, d)| {
        (
            n.to_string(),
            d.iter().map(|x| x.to_string()).collect::<Vec<_>>(),
        )
    }))
}

#[test]
fn topological_and_reverse_order() {
    let gr = g(&[
        ("App", &["Db", "Net"]),
        ("Db", &["Net"]),
        ("Net", &[]),
        ("Dns", &["App"]),
    ]);
    assert_eq!(gr.topo_order().unwrap(), ["Net", "Db", "App", "Dns"]);
    assert_eq!(gr.reverse_order().unwrap(), ["Dns", "App", "Db", "Net"]);
    assert_eq!(gr.dependencies("App"), ["Db", "Net"]);
    assert_eq!(gr.dependents("Net"), ["App", "Db"]);
}

#[test]
fn ready_sets_for_a_parallel_executor() {
    let gr = g(&[
        ("A", &[]),
        ("B", &[]),
        ("C", &["A", "B"]),
        ("D", &["A"]),
        ("E", &["C", "D"]),
    ]);
    let none = HashSet::new();
    assert_eq!(gr.ready(&none, &none), ["A", "B"]);
    let running: HashSet<&str> = ["B"].into();
    let done: HashSet<&str> = ["A"].into();
    assert_eq!(gr.ready(&done, &running), ["D"]);
    let done: HashSet<&str> = ["A", "B", "D"].into();
    assert_eq!(gr.ready(&done, &none), ["C"]);
    // Deletes go the other way: E first, then C and D, ...
    assert_eq!(gr.ready_for_delete(&none, &none), ["E"]);
    let deleted: HashSet<&str> = ["E"].into();
    assert_eq!(gr.ready_for_delete(&deleted, &none), ["C", "D"]);
    let deleted: HashSet<&str> = ["E", "C"].into();
    assert_eq!(gr.ready_for_delete(&deleted, &none), ["B", "D"]);
}

#[test]
fn incremental_scheduler_hands_out_each_node_once() {
    let gr = g(&[("A", &[]), ("B", &["A"]), ("C", &["A"]), ("D", &["B", "C"])]);
    let mut s = gr.scheduler();
    assert_eq!(s.take_ready(), ["A"]);
    assert!(s.take_ready().is_empty());
    s.complete("A");
    assert_eq!(s.take_ready(), ["B", "C"]);
    s.complete("B");
    assert!(s.take_ready().is_empty());
    s.complete("C");
    s.complete("C");
    assert_eq!(s.take_ready(), ["D"]);
    assert!(!s.finished());
    s.complete("D");
    assert!(s.finished());
}

#[test]
fn every_member_of_every_cycle_is_named() {
    let gr = g(&[
        ("A", &["B"]),
        ("B", &["C"]),
        ("C", &["A"]),
        ("D", &["D"]),
        ("E", &["A"]),
        ("F", &["G"]),
        ("G", &["F", "Missing"]),
    ]);
    let cycles: Vec<Vec<String>> = gr.cycles().into_iter().map(|c| c.members).collect();
    assert_eq!(cycles, [vec!["A", "B", "C"], vec!["D"], vec!["F", "G"]]);
    assert_eq!(gr.topo_order().unwrap_err().len(), 3);
}

#[test]
fn long_chains_do_not_recurse() {
    let n = 100_000;
    let names: Vec<String> = (0..n).map(|i| format!("R{i}")).collect();
    let gr = Graph::new((0..n).map(|i| {
        (
            names[i].clone(),
            if i == 0 {
                vec![]
            } else {
                vec![names[i - 1].clone()]
            },
        )
    }));
    assert!(gr.cycles().is_empty());
    assert_eq!(gr.topo_order().unwrap().len(), n);
    let cyc = Graph::new((0..n).map(|i| (names[i].clone(), vec![names[(i + 1) % n].clone()])));
    assert_eq!(cyc.cycles()[0].members.len(), n);
}
