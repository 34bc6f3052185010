//! Times the ALS fit alone, in process, on a matrix with the shape `stylecast seed` draws
//! (uniform users, influencers skewed by a cube), so a change to the solver can be judged in
//! a minute without seeding a database. The live figures (`bench/scale.py`) stay the ones
//! reported; this is the solver's share of them.
//!
//! cargo run --release --bin als-bench -- --users 1000000 --influencers 50000 --events 10000000

use std::time::Instant;

use clap::Parser;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use stylecast::interest::als::{self, AlsParams, Confidences};
use stylecast::tools::seed::skewed_influencer;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 1_000_000)]
    users: usize,
    #[arg(long, default_value_t = 50_000)]
    influencers: usize,
    #[arg(long, default_value_t = 10_000_000)]
    events: usize,
    #[arg(long, default_value_t = AlsParams::default().iterations)]
    iterations: usize,
    #[arg(long, default_value_t = AlsParams::default().cg_steps)]
    cg_steps: usize,
    #[arg(long, default_value_t = 1)]
    repeats: usize,
}

/// Users and influencers drawn as `stylecast seed` draws them; each event's affinity is one of a
/// few values between a view's 0.3 and 3 (the solver's cost depends on the cells, not on them).
fn draw_matrix(args: &Args, alpha: f32) -> Confidences {
    let mut rng = StdRng::seed_from_u64(20261207);
    let affinities = [0.3f32, 0.3, 0.3, 1.0, 1.0, 2.0, 3.0];
    let triples = (0..args.events)
        .map(|_| {
            let user = rng.random_range(0..args.users) as u32;
            let influencer = skewed_influencer(&mut rng, args.influencers) as u32;
            (user, influencer, affinities[rng.random_range(0..affinities.len())])
        })
        .collect();
    Confidences::from_triples(args.users, args.influencers, triples, alpha)
}

fn main() {
    let args = Args::parse();
    let params = AlsParams {
        iterations: args.iterations,
        cg_steps: args.cg_steps,
        ..AlsParams::default()
    };
    let drawn = Instant::now();
    let data = draw_matrix(&args, params.alpha);
    println!(
        "matrix: {} users x {} influencers, {} cells, drawn in {:.1} s; {} threads",
        args.users,
        args.influencers,
        data.nnz(),
        drawn.elapsed().as_secs_f64(),
        rayon::current_num_threads()
    );
    for _ in 0..args.repeats {
        let started = Instant::now();
        let model = als::train(&data, &params, |_| {});
        let seconds = started.elapsed().as_secs_f64();
        let checksum: f64 = model.item_factors.iter().take(1000).map(|v| f64::from(*v)).sum();
        println!(
            "train: {seconds:.2} s ({} iterations, {} CG steps); checksum {checksum:.6}",
            params.iterations, params.cg_steps
        );
    }
}
