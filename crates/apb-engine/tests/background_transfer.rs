//! Where a transport moves K/V blocks in the background (GPUs over NCCL), APB's hosts attend
//! to their anchor and local keys while the passing blocks travel, then to the passing keys,
//! merged by LSE; ring hosts pass each held block on while attending to it. Both paths give
//! what the in-step paths give, and the sends and receives the plan asks of every host pair
//! up.

mod common;

use std::sync::{Arc, Mutex, MutexGuard};

use apb_engine::comm::{Comm, Handoff, InFlight, InProcess};
use apb_engine::config::Architecture;
use apb_engine::cpu::backend::Cpu;
use apb_engine::exchange::KvBlock;
use apb_engine::{generate, EngineError, HostOutput, Request, Result};
use apb_plan::input::Strategy;
use common::*;

/// One transfer a host asked for: (sender, receiver, values per K).
type Transfer = (usize, usize, usize);
/// What the hosts asked of the exchange, every layer.
type Asked = Arc<Mutex<Vec<Transfer>>>;

/// Emulated hosts whose passing blocks "arrive in the background": handed over at start as
/// the in-process group does, but given out only by `finish`, so the forward takes the path
/// that real GPU hosts take.
struct Background {
    inner: InProcess,
    sent: Asked,
    received: Asked,
}

struct Arrived(Vec<Handoff>);

impl InFlight for Arrived {
    fn finish(self: Box<Self>) -> Result<Vec<Handoff>> {
        Ok(self.0)
    }
}

impl Comm for Background {
    fn rank(&self) -> usize {
        self.inner.rank()
    }
    fn size(&self) -> usize {
        self.inner.size()
    }
    fn all_gather(&mut self, data: Vec<f32>) -> Result<Vec<Arc<Vec<f32>>>> {
        self.inner.all_gather(data)
    }
    fn all_gather_handoff(&mut self, item: Handoff) -> Result<Option<Vec<Handoff>>> {
        self.inner.all_gather_handoff(item)
    }
    fn compute_turn(&self) -> Option<MutexGuard<'_, ()>> {
        self.inner.compute_turn()
    }
    fn abort(&self, reason: &str) {
        self.inner.abort(reason)
    }
    fn start_block_exchange(&mut self, own: Handoff, to: &[usize], from: &[(usize, usize)]) -> Result<Option<Box<dyn InFlight>>> {
        let rank = self.rank();
        // A passing block (or none), or a ring step's held block: offered as a passing block.
        let mine: Option<KvBlock<Cpu>> = match (own.downcast_ref::<Option<KvBlock<Cpu>>>(), own.downcast_ref::<KvBlock<Cpu>>()) {
            (Some(passing), _) => passing.clone(),
            (None, Some(held)) => Some(held.clone()),
            _ => panic!("a CPU K/V block"),
        };
        let own_values = mine.as_ref().map_or(0, |(k, _)| k.len());
        let own: Handoff = Arc::new(mine);
        self.sent.lock().unwrap().extend(to.iter().map(|&j| (rank, j, own_values)));
        self.received.lock().unwrap().extend(from.iter().map(|&(r, values)| (r, rank, values)));
        let all = self.inner.all_gather_handoff(own)?.expect("emulated hosts hand blocks over");
        let blocks = from
            .iter()
            .map(|&(r, values)| {
                let block = all[r].downcast_ref::<Option<KvBlock<Cpu>>>().and_then(|b| b.clone()).ok_or_else(|| EngineError::new("INTERNAL", "test", format!("host {r} sent no block")))?;
                assert_eq!(block.0.len(), values, "host {r}'s block has the size the plan gives");
                assert_eq!(block.1.len(), values, "host {r}'s block has the size the plan gives");
                Ok(Arc::new(block) as Handoff)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(Box::new(Arrived(blocks))))
    }
}

fn run(model: &apb_engine::Model<Cpu>, r: &Request) -> (Vec<HostOutput>, Vec<Transfer>, Vec<Transfer>) {
    let (sent, received): (Asked, Asked) = Default::default();
    let mut comms: Vec<Background> = InProcess::group(r.hosts).into_iter().map(|inner| Background { inner, sent: sent.clone(), received: received.clone() }).collect();
    let outputs = run_hosts(model, r, &mut comms).into_iter().map(|o| o.unwrap()).collect();
    let mut sent = sent.lock().unwrap().clone();
    let mut received = received.lock().unwrap().clone();
    sent.sort();
    received.sort();
    (outputs, sent, received)
}

#[test]
fn passing_keys_merged_after_the_rest_give_what_one_pass_gives() {
    let mut rng = Rng::fresh();
    for architecture in [Architecture::Llama, Architecture::Qwen2] {
        let c = tiny_config(architecture);
        let model = cpu_model(&c, &random_tensors(&c, &mut rng));
        let (n, q) = (rng.range(200, 500), rng.range(2, 6));
        let mut r = full_request(rng.tokens(n, c.vocab), rng.tokens(q, c.vocab));
        r.prefix_tokens = rng.range(0, 3);
        r.max_new_tokens = 4;
        for hosts in [2, 3, rng.range(4, 6)] {
            let r = Request { strategy: Strategy::Apb, hosts, ..r.clone() };
            let in_step = generate(&model, &r, &|_| true).unwrap();
            let (outputs, sent, received) = run(&model, &r);
            for (rank, out) in outputs.iter().enumerate() {
                assert_eq!(out.tokens, in_step.tokens, "{hosts} hosts: host {rank}'s tokens");
                let err = rel_error32(&out.first_logits, &in_step.first_logits);
                assert!(err <= 1e-5, "{hosts} hosts: host {rank}'s first-token logits differ by {err}");
            }
            // Every send has its receive, of the same size, and the last host's block goes
            // nowhere (no host after it keeps it).
            assert!(!sent.is_empty(), "{hosts} hosts: no block was sent");
            assert_eq!(sent, received, "{hosts} hosts: sends and receives pair up");
            assert!(sent.iter().all(|&(from, to, values)| from < to && values > 0), "{hosts} hosts: blocks go only to later hosts: {sent:?}");
        }
    }
}

#[test]
fn ring_steps_moved_under_the_attention_give_what_steps_in_turn_give() {
    let mut rng = Rng::fresh();
    let c = tiny_config(Architecture::Llama);
    let model = cpu_model(&c, &random_tensors(&c, &mut rng));
    let (n, q) = (rng.range(150, 400), rng.range(2, 6));
    let mut r = full_request(rng.tokens(n, c.vocab), rng.tokens(q, c.vocab));
    r.max_new_tokens = 4;
    for strategy in [Strategy::Ring, Strategy::RingZigzag] {
        for hosts in [2, rng.range(3, 6)] {
            let r = Request { strategy, hosts, ..r.clone() };
            let in_step = generate(&model, &r, &|_| true).unwrap();
            let (outputs, sent, received) = run(&model, &r);
            for (rank, out) in outputs.iter().enumerate() {
                assert_eq!(out.tokens, in_step.tokens, "{strategy:?} on {hosts} hosts: host {rank}'s tokens");
                let err = rel_error32(&out.first_logits, &in_step.first_logits);
                assert!(err <= 1e-5, "{strategy:?} on {hosts} hosts: host {rank}'s first-token logits differ by {err}");
            }
            assert_eq!(sent, received, "{strategy:?} on {hosts} hosts: sends and receives pair up");
            // Every host passes a block on at each of the H - 1 steps, always to the next host.
            assert_eq!(sent.len(), hosts * (hosts - 1) * c.layers, "{strategy:?} on {hosts} hosts: ring transfers");
            assert!(sent.iter().all(|&(from, to, _)| to == (from + 1) % hosts), "{strategy:?} on {hosts} hosts: {sent:?}");
        }
    }
}
