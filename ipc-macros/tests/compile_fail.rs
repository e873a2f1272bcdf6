//! Every signature `#[service]` cannot carry is a compile error saying what to write
//! instead: one case per file in tests/ui, with the compiler's output beside it.
//!
//! Only failures are tested here: an expansion that succeeds names keel-rt, which builds
//! for Keel alone. The guest crates (examples, tests/guest) compile the successes.

#[test]
fn unsupported_signatures_are_compile_errors() {
    trybuild::TestCases::new().compile_fail("tests/ui/*.rs");
}
