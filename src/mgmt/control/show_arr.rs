//! `show arr`: the ARR flow table (entries, capacity, memory, timeouts), its counters
//! summed over workers, and the tunnels holding the most flows.
use super::handlers::Plane;
use serde_json::{json, Value};

/// Tunnels listed by flow count.
const TOP: usize = 10;

pub fn arr(plane: &Plane) -> Value {
    let s = plane.publisher.current();
    let c = s.counters(plane.counters);
    let Some(t) = s.arr.as_deref() else {
        return json!({"generation": s.generation, "arr": {"enabled": false}});
    };
    // A full scan of the table, here on the management thread, off the fast path.
    let (entries, per) = t.census(s.arr_epoch, s.tunnels.len());
    let mut top: Vec<(usize, usize)> = per.into_iter().enumerate().filter(|x| x.1 > 0).collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let top: Vec<Value> = top
        .into_iter()
        .take(TOP)
        .map(|(i, n)| {
            let tc = c.tunnels.get(i).copied().unwrap_or_default();
            json!({"name": s.tunnels[i].name, "flows": n, "learned": tc.arr_learned,
                   "refused": tc.arr_refused, "returned": tc.arr_returned})
        })
        .collect();
    let to = &t.timeouts;
    json!({"generation": s.generation, "arr": {
        "enabled": s.arr_active, "entries": entries, "capacity": t.capacity(), "bytes": t.bytes(),
        "learned": c.arr_learned, "refreshed": c.arr_refreshed, "refused": c.arr_refused,
        "returned": c.arr_returned, "expired": t.expired(),
        "timeouts": {"tcp_established": to.tcp_established, "tcp_syn": to.tcp_syn,
                     "tcp_closing": to.tcp_closing, "udp": to.udp, "icmp": to.icmp},
        "top_tunnels": top}})
}
