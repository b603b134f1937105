//! The resource dependency graph: a DAG with a topological order, "ready set" queries for a
//! parallel executor, and cycle detection that names every member of every cycle.

use std::collections::{BTreeSet, HashMap, HashSet};

/// Dependencies between named nodes (resources). Edges point from a node to what it needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Graph {
    names: Vec<String>,
    index: HashMap<String, usize>,
    /// `deps[i]`: the nodes `i` depends on (sorted, unique).
    deps: Vec<Vec<usize>>,
    /// `rdeps[i]`: the nodes that depend on `i`.
    rdeps: Vec<Vec<usize>>,
}

/// A set of nodes that depend on each other in a circle, in a stable order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cycle {
    pub members: Vec<String>,
}

impl Graph {
    /// Builds a graph from `(name, dependencies)` pairs. Dependencies on names that are not
    /// nodes are ignored (validation reports them).
    pub fn new<I, S>(nodes: I) -> Graph
    where
        I: IntoIterator<Item = (String, S)>,
        S: IntoIterator<Item = String>,
    {
        let mut g = Graph::default();
        let mut pending = Vec::new();
        for (name, deps) in nodes {
            let i = g.names.len();
            g.index.insert(name.clone(), i);
            g.names.push(name);
            pending.push(deps.into_iter().collect::<Vec<_>>());
        }
        g.deps = vec![Vec::new(); g.names.len()];
        g.rdeps = vec![Vec::new(); g.names.len()];
        for (i, deps) in pending.into_iter().enumerate() {
            let mut d: Vec<usize> = deps
                .iter()
                .filter_map(|n| g.index.get(n).copied())
                .collect();
            d.sort_unstable();
            d.dedup();
            for &j in &d {
                g.rdeps[j].push(i);
            }
            g.deps[i] = d;
        }
        g
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    /// What `name` depends on directly.
    pub fn dependencies(&self, name: &str) -> Vec<&str> {
        self.index
            .get(name)
            .map(|&i| {
                self.deps[i]
                    .iter()
                    .map(|&j| self.names[j].as_str())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// What depends on `name` directly.
    pub fn dependents(&self, name: &str) -> Vec<&str> {
        self.index
            .get(name)
            .map(|&i| {
                self.rdeps[i]
                    .iter()
                    .map(|&j| self.names[j].as_str())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every cycle (strongly connected component with more than one member, or a node that
    /// depends on itself), each with all of its members. Tarjan's algorithm, iterative.
    pub fn cycles(&self) -> Vec<Cycle> {
        let n = self.names.len();
        let mut index = vec![usize::MAX; n];
        let mut low = vec![0usize; n];
        let mut on_stack = vec![false; n];
        let mut stack = Vec::new();
        let mut next = 0usize;
        let mut out = Vec::new();
        for root in 0..n {
            if index[root] != usize::MAX {
                continue;
            }
            // (node, position in its dependency list)
            let mut work = vec![(root, 0usize)];
            index[root] = next;
            low[root] = next;
            next += 1;
            stack.push(root);
            on_stack[root] = true;
            while let Some(&mut (v, ref mut k)) = work.last_mut() {
                if *k < self.deps[v].len() {
                    let w = self.deps[v][*k];
                    *k += 1;
                    if index[w] == usize::MAX {
                        index[w] = next;
                        low[w] = next;
                        next += 1;
                        stack.push(w);
                        on_stack[w] = true;
                        work.push((w, 0));
                    } else if on_stack[w] {
                        low[v] = low[v].min(index[w]);
                    }
                } else {
                    work.pop();
                    if let Some(&(parent, _)) = work.last() {
                        low[parent] = low[parent].min(low[v]);
                    }
                    if low[v] == index[v] {
                        let mut comp = Vec::new();
                        loop {
                            let w = stack.pop().expect("v is on the stack");
                            on_stack[w] = false;
                            comp.push(w);
                            if w == v {
                                break;
                            }
                        }
                        if comp.len() > 1 || self.deps[v].contains(&v) {
                            comp.sort_unstable();
                            out.push(Cycle {
                                members: comp.iter().map(|&i| self.names[i].clone()).collect(),
                            });
                        }
                    }
                }
            }
        }
        out.sort_by(|a, b| a.members.cmp(&b.members));
        out
    }

    /// A creation order: every node after its dependencies; ties keep declaration order.
    /// `Err` with every cycle when there is one.
    pub fn topo_order(&self) -> Result<Vec<&str>, Vec<Cycle>> {
        let n = self.names.len();
        let mut missing: Vec<usize> = self.deps.iter().map(Vec::len).collect();
        // A min-heap on the index keeps the order deterministic and close to the template's.
        let mut ready: std::collections::BinaryHeap<std::cmp::Reverse<usize>> = (0..n)
            .filter(|&i| missing[i] == 0)
            .map(std::cmp::Reverse)
            .collect();
        let mut out = Vec::with_capacity(n);
        while let Some(std::cmp::Reverse(i)) = ready.pop() {
            out.push(self.names[i].as_str());
            for &j in &self.rdeps[i] {
                missing[j] -= 1;
                if missing[j] == 0 {
                    ready.push(std::cmp::Reverse(j));
                }
            }
        }
        if out.len() == n {
            Ok(out)
        } else {
            Err(self.cycles())
        }
    }

    /// The deletion order: the creation order reversed (dependents go first).
    pub fn reverse_order(&self) -> Result<Vec<&str>, Vec<Cycle>> {
        let mut o = self.topo_order()?;
        o.reverse();
        Ok(o)
    }

    /// The nodes that can start now during creation: not completed, not in `running`, and
    /// every dependency completed. Declaration order.
    pub fn ready<'a>(&'a self, completed: &HashSet<&str>, running: &HashSet<&str>) -> Vec<&'a str> {
        (0..self.names.len())
            .filter(|&i| {
                let name = self.names[i].as_str();
                !completed.contains(name)
                    && !running.contains(name)
                    && self.deps[i]
                        .iter()
                        .all(|&j| completed.contains(self.names[j].as_str()))
            })
            .map(|i| self.names[i].as_str())
            .collect()
    }

    /// The nodes that can be deleted now: not deleted, not running, and everything that
    /// depends on them already deleted.
    pub fn ready_for_delete<'a>(
        &'a self,
        deleted: &HashSet<&str>,
        running: &HashSet<&str>,
    ) -> Vec<&'a str> {
        (0..self.names.len())
            .filter(|&i| {
                let name = self.names[i].as_str();
                !deleted.contains(name)
                    && !running.contains(name)
                    && self.rdeps[i]
                        .iter()
                        .all(|&j| deleted.contains(self.names[j].as_str()))
            })
            .map(|i| self.names[i].as_str())
            .collect()
    }

    /// An incremental scheduler for executors that want O(edges) total work.
    pub fn scheduler(&self) -> Scheduler<'_> {
        let missing: Vec<usize> = self.deps.iter().map(Vec::len).collect();
        let ready = (0..self.names.len()).filter(|&i| missing[i] == 0).collect();
        Scheduler {
            g: self,
            missing,
            ready,
            done: BTreeSet::new(),
        }
    }
}

/// Hands out nodes as their dependencies complete.
#[derive(Debug)]
pub struct Scheduler<'g> {
    g: &'g Graph,
    missing: Vec<usize>,
    ready: Vec<usize>,
    done: BTreeSet<usize>,
}

impl<'g> Scheduler<'g> {
    /// Takes every node that is ready now (each is returned once).
    pub fn take_ready(&mut self) -> Vec<&'g str> {
        let mut r = std::mem::take(&mut self.ready);
        r.sort_unstable();
        r.into_iter().map(|i| self.g.names[i].as_str()).collect()
    }

    /// Marks a node complete; its dependents may become ready.
    pub fn complete(&mut self, name: &str) {
        let Some(&i) = self.g.index.get(name) else {
            return;
        };
        if !self.done.insert(i) {
            return;
        }
        for &j in &self.g.rdeps[i] {
            self.missing[j] -= 1;
            if self.missing[j] == 0 {
                self.ready.push(j);
            }
        }
    }

    /// True when every node has completed.
    pub fn finished(&self) -> bool {
        self.done.len() == self.g.names.len()
    }
}
