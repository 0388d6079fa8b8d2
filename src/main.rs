fn main() {
    println!("pbikiosk {}", pbikiosk::VERSION);
}
