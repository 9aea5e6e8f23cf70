//! Route selection for one prefix: among the routes visible on this server, the lowest
//! effective priority wins (base priority plus the health penalty of the route's tunnel);
//! at equal priority static beats BGP; what is left is the ECMP group.
use crate::config::{Health, RouteSource};

/// One route for a prefix, as selection sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Candidate {
    /// The next hop id in the snapshot.
    pub nexthop: u32,
    /// The tunnel it goes through, whose health adds a penalty.
    pub tunnel: Option<u16>,
    pub priority: u32,
    pub weight: u16,
    pub source: RouteSource,
    /// Stable identity of the next hop, for ECMP tables.
    pub key: u64,
    /// An implicit route (a neighbour's /32, a tunnel's interface subnet), not a configured
    /// one. Nothing here names the config entry, so prefixes with the same routes share one
    /// set and one group: a full table has a handful of sets, not one per prefix.
    pub implicit: bool,
}

impl Candidate {
    pub fn effective(&self, health: &[Health]) -> u64 {
        let h = self
            .tunnel
            .and_then(|t| health.get(t as usize))
            .copied()
            .unwrap_or_default();
        self.priority as u64 + h.penalty()
    }
}

/// Why a candidate is not in the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lost {
    /// A lower effective priority won.
    Priority { effective: u64, winner: u64 },
    /// Same priority, but a static route beats a BGP one.
    StaticPreferred,
}

/// Indices of the candidates that form the ECMP group, and the winning effective priority.
/// Routes are never removed for health: with every tunnel down, the lowest value still wins.
pub fn select(cands: &[Candidate], health: &[Health]) -> (Vec<usize>, u64) {
    let Some(best) = cands.iter().map(|c| c.effective(health)).min() else {
        return (Vec::new(), 0);
    };
    let at_best: Vec<usize> = (0..cands.len())
        .filter(|&i| cands[i].effective(health) == best)
        .collect();
    let any_static = at_best
        .iter()
        .any(|&i| cands[i].source == RouteSource::Static);
    let group = at_best
        .into_iter()
        .filter(|&i| !any_static || cands[i].source == RouteSource::Static)
        .collect();
    (group, best)
}

/// Why candidate `i` lost, or None when it is in the group.
pub fn why_lost(cands: &[Candidate], health: &[Health], i: usize) -> Option<Lost> {
    let (group, best) = select(cands, health);
    if group.contains(&i) {
        return None;
    }
    let eff = cands.get(i)?.effective(health);
    Some(if eff > best {
        Lost::Priority {
            effective: eff,
            winner: best,
        }
    } else {
        Lost::StaticPreferred
    })
}
