//! shmlane's own rings, measured across processes (filled in as the rings land).

use crate::report::Report;
use crate::run::Res;

/// SPSC round trip, compared to the floor.
pub fn spsc_rtt(_r: &mut Report, _rounds: u64, _warmup: u64, _floor: &str) -> Res<()> {
    Ok(())
}

/// SPSC throughput, compared to rtrb in-process.
pub fn spsc_rate(_r: &mut Report, _n: u64, _runs: usize, _cap: usize) -> Res<()> {
    Ok(())
}
