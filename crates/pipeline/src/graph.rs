//! The job graph: `needs` edges between jobs, checked to be a DAG, ordered into stages.

use std::collections::BTreeMap;

/// Jobs in file order, each with the jobs it needs.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct JobGraph {
    pub needs: BTreeMap<String, Vec<String>>,
    /// Job ids in the order the file declares them.
    pub order: Vec<String>,
}

impl JobGraph {
    pub fn add(&mut self, job: &str, needs: Vec<String>) {
        self.order.push(job.to_string());
        self.needs.insert(job.to_string(), needs);
    }

    /// A cycle of `needs`, as the jobs along it with the first repeated at the end; `None`
    /// for a DAG. Edges to unknown jobs are ignored (they are reported on their own).
    pub fn find_cycle(&self) -> Option<Vec<String>> {
        // 0 unvisited, 1 on the stack, 2 done.
        let mut state: BTreeMap<&str, u8> = BTreeMap::new();
        let mut stack: Vec<&str> = Vec::new();
        for start in &self.order {
            if let Some(c) = self.visit(start, &mut state, &mut stack) {
                return Some(c);
            }
        }
        None
    }

    fn visit<'a>(
        &'a self,
        job: &'a str,
        state: &mut BTreeMap<&'a str, u8>,
        stack: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        match state.get(job) {
            Some(2) => return None,
            Some(1) => {
                let from = stack.iter().position(|j| *j == job).unwrap_or(0);
                let mut cycle: Vec<String> = stack[from..].iter().map(|s| s.to_string()).collect();
                cycle.push(job.to_string());
                return Some(cycle);
            }
            _ => {}
        }
        state.insert(job, 1);
        stack.push(job);
        for n in self.needs.get(job).into_iter().flatten() {
            if self.needs.contains_key(n) {
                if let Some(c) = self.visit(n, state, stack) {
                    return Some(c);
                }
            }
        }
        stack.pop();
        state.insert(job, 2);
        None
    }

    /// Stages: every job in a stage needs only jobs of earlier stages, and each job sits in
    /// the earliest stage it can. Within a stage, file order. `None` when there is a cycle.
    pub fn stages(&self) -> Option<Vec<Vec<String>>> {
        let mut level: BTreeMap<&str, usize> = BTreeMap::new();
        let mut remaining: Vec<&str> = self.order.iter().map(String::as_str).collect();
        while !remaining.is_empty() {
            let before = remaining.len();
            remaining.retain(|j| {
                let needs = &self.needs[*j];
                let known: Vec<&String> = needs
                    .iter()
                    .filter(|n| self.needs.contains_key(*n))
                    .collect();
                if known.iter().all(|n| level.contains_key(n.as_str())) {
                    let l = known
                        .iter()
                        .map(|n| level[n.as_str()] + 1)
                        .max()
                        .unwrap_or(0);
                    level.insert(j, l);
                    false
                } else {
                    true
                }
            });
            if remaining.len() == before {
                return None;
            }
        }
        let depth = level.values().max().map_or(0, |m| m + 1);
        let mut stages = vec![Vec::new(); depth];
        for j in &self.order {
            stages[level[j.as_str()]].push(j.clone());
        }
        Some(stages)
    }
}
