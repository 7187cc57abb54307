//! The layouts the Rust mirrors assert (`c_layout!`) against the `static_assert`s in the
//! kernels' sources: the same struct, size, alignment and offsets on both sides.

use std::collections::BTreeMap;

pub(crate) struct CLayout {
    pub c_name: &'static str,
    pub file: &'static str,
    pub size: usize,
    pub align: usize,
    pub fields: &'static [(&'static str, usize)],
}

/// What the source's static_asserts state about `c_name`: sizeof, alignof and each offsetof.
fn stated(source: &str, c_name: &str) -> (Option<usize>, Option<usize>, BTreeMap<String, usize>) {
    let compact: String = source.split_whitespace().collect::<Vec<_>>().join(" ");
    let number_after = |at: usize| -> Option<usize> {
        let rest = compact[at..].trim_start().strip_prefix("==")?.trim_start();
        rest.chars().take_while(|c| c.is_ascii_digit()).collect::<String>().parse().ok()
    };
    let find = |pattern: &str| compact.find(pattern).and_then(|i| number_after(i + pattern.len()));
    let size = find(&format!("sizeof({c_name})"));
    let align = find(&format!("alignof({c_name})"));
    let mut offsets = BTreeMap::new();
    let prefix = format!("offsetof({c_name}, ");
    let mut from = 0;
    while let Some(i) = compact[from..].find(&prefix) {
        let start = from + i + prefix.len();
        let end = start + compact[start..].find(')').expect("offsetof( closes");
        if let Some(n) = number_after(end + 1) {
            offsets.insert(compact[start..end].to_string(), n);
        }
        from = end;
    }
    (size, align, offsets)
}

fn check(l: &CLayout) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../cuda").join(l.file);
    let source = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let (size, align, offsets) = stated(&source, l.c_name);
    assert_eq!(size, Some(l.size), "sizeof({}) in cuda/{}", l.c_name, l.file);
    assert_eq!(align, Some(l.align), "alignof({}) in cuda/{}", l.c_name, l.file);
    let mirrored: BTreeMap<String, usize> = l.fields.iter().map(|(f, o)| (f.to_string(), *o)).collect();
    assert_eq!(offsets, mirrored, "the offsets cuda/{} asserts for {} against the Rust mirror's", l.file, l.c_name);
}

#[test]
fn every_mirror_matches_its_kernel_source() {
    for l in [
        crate::attention::Segment::C_LAYOUT,
        crate::attention::SegmentList::C_LAYOUT,
        crate::attention_sm90::Sm90Params::C_LAYOUT,
        crate::attention_decode::DecodeParams::C_LAYOUT,
        crate::merge::MergeParts::C_LAYOUT,
    ] {
        check(&l);
    }
}

#[test]
fn the_reader_finds_what_a_source_states() {
    let source = "static_assert(sizeof(s) == 16 &&\n alignof(s) == 8 && offsetof(s, a) == 0 && offsetof(s, b) ==\n 8, \"\");";
    let (size, align, offsets) = stated(source, "s");
    assert_eq!((size, align), (Some(16), Some(8)));
    assert_eq!(offsets, BTreeMap::from([("a".to_string(), 0), ("b".to_string(), 8)]));
    assert_eq!(stated(source, "t"), (None, None, BTreeMap::new()));
}

/// A kernel is its source and its Rust launcher: no source launches a kernel itself (`<<<`),
/// defines a host function, or includes a header of its own beside the shared device helpers.
#[test]
fn the_kernel_sources_hold_kernels_only() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../cuda");
    let mut sources = 0;
    for entry in std::fs::read_dir(&dir).expect("cuda/ exists") {
        let path = entry.expect("a directory entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        if name.ends_with(".h") {
            panic!("cuda/{name}: a kernel's contract lives in its .cu and its Rust launcher, not a header");
        }
        if !name.ends_with(".cu") && !name.ends_with(".cuh") {
            continue;
        }
        sources += 1;
        let text = std::fs::read_to_string(&path).expect("readable");
        assert!(!text.contains("<<<"), "cuda/{name} launches a kernel: launches belong in its Rust launcher");
        assert!(!text.contains("cudaStream_t") && !text.contains("__host__"), "cuda/{name} has host code");
        for line in text.lines().filter(|l| l.starts_with("#include \"")) {
            assert_eq!(line, "#include \"common.cuh\"", "cuda/{name} includes something other than the shared device helpers");
        }
    }
    assert!(sources >= 5, "found {sources} kernel sources in {}", dir.display());
}
