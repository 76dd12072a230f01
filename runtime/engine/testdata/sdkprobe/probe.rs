//! probe prints what the Rust SDK's option accessors return, for sdk_test.go.

fn main() {
    kiln::run(|opts| {
        println!("greeting={}", opts.string("greeting")?.unwrap_or_else(|| "(default)".to_string()));
        println!("count={}", opts.int("count")?.unwrap_or(-1));
        println!("flag={}", opts.bool("flag")?.unwrap_or(false));
        println!("nested={}", opts.raw("nested").unwrap_or("(none)"));
        Ok(())
    })
}
