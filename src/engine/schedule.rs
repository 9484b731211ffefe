//! Learning-rate and entropy schedules (seed §3): linear warm-up from lr/10 over the first 5 % of
//! updates, then cosine decay to 1 % of lr; the entropy coefficient follows a cosine from its
//! start value to its end value.

pub fn learning_rate(base: f64, update: usize, updates: usize) -> f64 {
    let updates = updates.max(1) as f64;
    let u = update as f64;
    let warm = (0.05 * updates).max(1.0);
    if u < warm {
        base * (0.1 + 0.9 * u / warm)
    } else {
        let p = ((u - warm) / (updates - warm).max(1.0)).clamp(0.0, 1.0);
        let floor = 0.01 * base;
        floor + (base - floor) * 0.5 * (1.0 + (std::f64::consts::PI * p).cos())
    }
}

pub fn entropy_coef(start: f64, end: f64, update: usize, updates: usize) -> f64 {
    let p = (update as f64 / updates.max(1) as f64).clamp(0.0, 1.0);
    end + (start - end) * 0.5 * (1.0 + (std::f64::consts::PI * p).cos())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_cosine_to_one_percent() {
        let lr = 1e-3;
        assert!((learning_rate(lr, 0, 100) - 1e-4).abs() < 1e-12);
        assert!((learning_rate(lr, 5, 100) - lr).abs() < 1e-12);
        assert!((learning_rate(lr, 100, 100) - 1e-5).abs() < 1e-12);
        assert!(learning_rate(lr, 50, 100) < lr && learning_rate(lr, 50, 100) > 1e-5);
        assert!((entropy_coef(0.015, 0.005, 0, 10) - 0.015).abs() < 1e-12);
        assert!((entropy_coef(0.015, 0.005, 10, 10) - 0.005).abs() < 1e-12);
    }
}
