//! A fuzzer's bytes read as a sequence of small values; reads past the end give zeros, so every
//! input, however short, is a valid program of events.

/// A cursor over a fuzzer's input.
#[derive(Debug, Clone)]
pub struct Input<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Input<'a> {
    /// A cursor at the start of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Input { data, pos: 0 }
    }

    /// True once every byte was read.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    /// The next byte (0 past the end).
    pub fn u8(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }

    /// The next 8 bytes as a little-endian u64.
    pub fn u64(&mut self) -> u64 {
        (0..8).fold(0u64, |v, i| v | (u64::from(self.u8()) << (8 * i)))
    }

    /// A small number below `n` (`n` > 0), from one byte.
    pub fn below(&mut self, n: usize) -> usize {
        usize::from(self.u8()) % n.max(1)
    }

    /// An iteration near `around`: mostly close to it, sometimes anywhere.
    pub fn iteration(&mut self, around: u64) -> u64 {
        match self.u8() % 8 {
            0 => self.u64(),
            1 => around.saturating_sub(u64::from(self.u8())),
            _ => around.saturating_add(u64::from(self.u8() % 24)),
        }
    }

    /// A value: mostly small and finite, sometimes NaN, infinite or huge.
    pub fn value(&mut self) -> f32 {
        match self.u8() {
            0 => f32::NAN,
            1 => f32::INFINITY,
            2 => f32::NEG_INFINITY,
            3 => f32::MAX,
            b => (f32::from(b) - 128.0) / 64.0,
        }
    }

    /// `n` values (see [`Input::value`]).
    pub fn values(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.value()).collect()
    }

    /// The rest of the input.
    pub fn rest(&mut self) -> &'a [u8] {
        let rest = self.data.get(self.pos..).unwrap_or(&[]);
        self.pos = self.data.len();
        rest
    }
}
