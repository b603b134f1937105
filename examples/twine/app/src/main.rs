//! `twine [--listen ADDR]`: serves the expenses API (default `0.0.0.0:8080`, or
//! `TWINE_LISTEN`). Prints `listening on ADDR` once it accepts connections.

fn main() {
    let mut listen = std::env::var("TWINE_LISTEN").unwrap_or_else(|_| "0.0.0.0:8080".into());
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--listen" => match args.next() {
                Some(v) => listen = v,
                None => fail("--listen needs an address such as 0.0.0.0:8080"),
            },
            "--help" | "-h" => {
                println!("usage: twine [--listen ADDR]   (default 0.0.0.0:8080, env TWINE_LISTEN)");
                return;
            }
            other => fail(&format!("unknown argument `{other}` (try --help)")),
        }
    }
    let server = match twine_app::Server::bind(&listen) {
        Ok(s) => s,
        Err(e) => fail(&format!("cannot listen on {listen}: {e}")),
    };
    println!("listening on {}", server.local_addr());
    server.run();
}

fn fail(msg: &str) -> ! {
    eprintln!("twine: {msg}");
    std::process::exit(2);
}
