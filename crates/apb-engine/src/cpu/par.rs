//! Splitting work across the machine's cores with scoped threads (no thread pool: a
//! prefill op has enough work per call to amortise the spawns; tiny calls run inline).

use std::sync::OnceLock;

pub fn threads() -> usize {
    static THREADS: OnceLock<usize> = OnceLock::new();
    *THREADS.get_or_init(|| {
        std::env::var("APB_THREADS")
            .ok()
            .and_then(|s| s.parse().ok())
            .filter(|&n: &usize| n > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
    })
}

/// Runs `f(first_row, rows_chunk)` over `out` split into whole rows of `row_len`, in
/// parallel when there are at least `min_rows_per_thread` rows for each thread.
pub fn for_row_chunks<F>(out: &mut [f32], row_len: usize, min_rows_per_thread: usize, f: F)
where
    F: Fn(usize, &mut [f32]) + Sync,
{
    let rows = out.len().checked_div(row_len).unwrap_or(0);
    let workers = threads().min(rows / min_rows_per_thread.max(1)).max(1);
    if workers == 1 {
        f(0, out);
        return;
    }
    let per = rows.div_ceil(workers);
    std::thread::scope(|s| {
        for (i, chunk) in out.chunks_mut(per * row_len).enumerate() {
            let f = &f;
            s.spawn(move || f(i * per, chunk));
        }
    });
}

/// Runs `f(index)` for every index in 0..n across the cores, collecting results in order.
pub fn map<T: Send, F>(n: usize, f: F) -> Vec<T>
where
    F: Fn(usize) -> T + Sync,
{
    let workers = threads().min(n).max(1);
    if workers == 1 {
        return (0..n).map(f).collect();
    }
    let per = n.div_ceil(workers);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let f = &f;
                s.spawn(move || (w * per..((w + 1) * per).min(n)).map(f).collect::<Vec<T>>())
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect()
    })
}
