//! probe prints what the Rust SDK's option accessors return, for sdk_test.go.

fn main() {
    kiln::run(|opts| {
        // A NUL is shown as \0: kiln removes control characters from a
        // stage's log, and the test must see that Rust kept it.
        let greeting = opts.string("greeting")?.unwrap_or_else(|| "(default)".to_string());
        println!("greeting={}", greeting.replace('\0', "\\0"));
        println!("count={}", opts.int("count")?.unwrap_or(-1));
        println!("flag={}", opts.bool("flag")?.unwrap_or(false));
        println!("nested={}", opts.raw("nested").unwrap_or("(none)"));
        Ok(())
    })
}
