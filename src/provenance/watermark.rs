//! An invisible, blind watermark carrying a 128-bit id (DWT-DCT with quantization index
//! modulation), made to survive JPEG re-encoding and downscaling.
//!
//! Why this shape:
//! - Everything happens on luma resampled to a canonical `CANON`×`CANON` grid, so any output
//!   size and aspect ratio maps to the same coefficients, and a resized copy maps back to
//!   them too (the grid is no finer than the smallest image it must be read from).
//! - One Haar step keeps the LL band (the 2×2 means); 8×8 DCT blocks of it give coefficients
//!   of the lowest spatial frequencies, which JPEG quantizes least and resizing keeps.
//! - Each payload bit (id + CRC-16) is written into several coefficients spread over the
//!   image by quantization index modulation (QIM, Chen & Wornell 2001) with a per-slot
//!   dither; reading sums soft votes over the copies, and the CRC says whether a watermark
//!   is there at all.
//! - The change is made on the canonical grid, upsampled and added to R, G and B alike
//!   (luma moves by exactly that much, chroma not at all); a few passes re-read the result
//!   and correct what resampling and 8-bit rounding lost.

use std::sync::{Arc, LazyLock};

use image::RgbImage;
use rustdct::{DctPlanner, TransformType2And3};
use uuid::Uuid;

use crate::media::{self, FilterType};

/// Smallest side (pixels) an image may have for the watermark to be written or read.
pub const MIN_SIDE: u32 = 64;
/// Side of the canonical grid: no finer than the smallest image it is read from (a 128-pixel
/// output halved), so a downscaled copy resamples to nearly the same grid as the original.
const CANON: u32 = 64;
const LL: usize = (CANON / 2) as usize;
const BLOCK: usize = 8;
const BLOCKS: usize = LL / BLOCK;
/// Coefficients (row, column) with row + column up to this carry bits: the lowest 28
/// frequencies of each block, 448 slots in all, about three copies of each payload bit.
const MAX_FREQUENCY: usize = 6;
/// QIM step, in luma levels of an orthonormal LL-block coefficient. Measured on 200 photos
/// (BENCHMARKS.md): 16 keeps PSNR near 38 dB and reads back after JPEG q75 + 0.5x in ~98%.
const STEP: f32 = 16.0;
const ID_BITS: usize = 128;
const CRC_BITS: usize = 16;
const PAYLOAD_BITS: usize = ID_BITS + CRC_BITS;
/// Embed, re-read, correct: resampling and rounding lose a little of each pass. A second
/// pass gains most of what more would (measured: 4 passes cost twice as much for no gain).
const PASSES: usize = 2;
/// Fixes the dither and the interleaving; changing it orphans every watermark made before.
const SEED: u64 = 0x5354_594c_4543_4153;
const CRC16: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_IBM_3740);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("image is {width}x{height}; the watermark needs each side to be at least {MIN_SIDE} pixels")]
pub struct TooSmall {
    pub width: u32,
    pub height: u32,
}

/// A watermark read back: the id and how clearly it was read (mean |soft vote| in 0..=1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detection {
    pub id: Uuid,
    pub confidence: f32,
}

/// Where one copy of one payload bit lives.
struct Slot {
    block: usize,
    coeff: (usize, usize),
    bit: usize,
    dither: f32,
}

struct Layout {
    slots: Vec<Slot>,
    dct: Arc<dyn TransformType2And3<f32>>,
}

const COEFFS_PER_BLOCK: usize = (MAX_FREQUENCY + 1) * (MAX_FREQUENCY + 2) / 2;

static LAYOUT: LazyLock<Layout> = LazyLock::new(|| {
    let coefficients: Vec<(usize, usize)> = (0..=MAX_FREQUENCY)
        .flat_map(|sum| (0..=sum).map(move |row| (row, sum - row)))
        .collect();
    let mut rng = SplitMix64(SEED);
    let count = BLOCKS * BLOCKS * COEFFS_PER_BLOCK;
    // Bits are dealt round-robin over a shuffled slot order, so the copies of a bit land in
    // blocks far apart (a damaged region costs each bit at most one copy or two).
    let mut order: Vec<usize> = (0..count).collect();
    for i in (1..count).rev() {
        let j = (rng.next() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    let mut slots: Vec<Slot> = (0..count)
        .map(|n| Slot {
            block: n / COEFFS_PER_BLOCK,
            coeff: coefficients[n % COEFFS_PER_BLOCK],
            bit: 0,
            dither: 0.0,
        })
        .collect();
    for (rank, &slot) in order.iter().enumerate() {
        slots[slot].bit = rank % PAYLOAD_BITS;
        slots[slot].dither = (rng.next() >> 40) as f32 / (1u64 << 24) as f32 * STEP;
    }
    Layout {
        slots,
        dct: DctPlanner::new().plan_dct2(BLOCK),
    }
});

/// The image with `id` written into it invisibly.
pub fn embed(image: &RgbImage, id: Uuid) -> Result<RgbImage, TooSmall> {
    check_size(image)?;
    let layout = &*LAYOUT;
    let bits = payload(id);
    let mut out = image.clone();
    for _ in 0..PASSES {
        let ll = ll_band(&out);
        let mut delta = vec![0.0f32; LL * LL];
        let mut worst = 0.0f32;
        for block in 0..BLOCKS * BLOCKS {
            let mut coeffs = read_block(&ll, block);
            layout.forward(&mut coeffs);
            let mut change = [0.0f32; BLOCK * BLOCK];
            for slot in layout.slots.iter().filter(|s| s.block == block) {
                let at = slot.coeff.0 * BLOCK + slot.coeff.1;
                let target = quantize(coeffs[at], bits[slot.bit], slot.dither);
                change[at] = target - coeffs[at];
                worst = worst.max(change[at].abs());
            }
            layout.inverse(&mut change);
            write_block(&mut delta, block, &change);
        }
        if worst < 0.05 * STEP {
            break;
        }
        add_luma(&mut out, &delta);
    }
    Ok(out)
}

/// The id written into `image`, or None when no watermark reads back (its CRC fails).
pub fn detect(image: &RgbImage) -> Result<Option<Detection>, TooSmall> {
    check_size(image)?;
    let layout = &*LAYOUT;
    let ll = ll_band(image);
    let mut votes = [0.0f32; PAYLOAD_BITS];
    let mut copies = [0u32; PAYLOAD_BITS];
    for block in 0..BLOCKS * BLOCKS {
        let mut coeffs = read_block(&ll, block);
        layout.forward(&mut coeffs);
        for slot in layout.slots.iter().filter(|s| s.block == block) {
            let at = slot.coeff.0 * BLOCK + slot.coeff.1;
            // Phase within the step: 0 is bit 0's lattice, 1/2 is bit 1's; cos gives a soft
            // vote, +1 for a clean 0, -1 for a clean 1, near 0 when unsure.
            let phase = ((coeffs[at] - slot.dither) / STEP).rem_euclid(1.0);
            votes[slot.bit] += (std::f32::consts::TAU * phase).cos();
            copies[slot.bit] += 1;
        }
    }
    let bits: Vec<bool> = votes.iter().map(|v| *v < 0.0).collect();
    let confidence = votes.iter().zip(&copies).map(|(v, n)| v.abs() / *n as f32).sum::<f32>() / PAYLOAD_BITS as f32;
    let (id_bits, crc_bits) = bits.split_at(ID_BITS);
    let id = Uuid::from_u128(to_number(id_bits));
    if to_number(crc_bits) as u16 != CRC16.checksum(id.as_bytes()) {
        return Ok(None);
    }
    Ok(Some(Detection { id, confidence }))
}

fn check_size(image: &RgbImage) -> Result<(), TooSmall> {
    let (width, height) = image.dimensions();
    if width < MIN_SIDE || height < MIN_SIDE {
        return Err(TooSmall { width, height });
    }
    Ok(())
}

/// The id's 128 bits then its CRC-16, most significant first.
fn payload(id: Uuid) -> Vec<bool> {
    let number = id.as_u128();
    let crc = CRC16.checksum(id.as_bytes());
    (0..ID_BITS)
        .rev()
        .map(|i| (number >> i) & 1 == 1)
        .chain((0..CRC_BITS).rev().map(|i| (crc >> i) & 1 == 1))
        .collect()
}

fn to_number(bits: &[bool]) -> u128 {
    bits.iter().fold(0u128, |n, b| (n << 1) | u128::from(*b))
}

/// The nearest point of bit `bit`'s lattice (dither + bit·step/2 + k·step) to `value`.
fn quantize(value: f32, bit: bool, dither: f32) -> f32 {
    let offset = dither + if bit { STEP / 2.0 } else { 0.0 };
    ((value - offset) / STEP).round() * STEP + offset
}

/// Luma (BT.601, 0..1) resampled to the canonical grid, then the Haar LL band (2×2 means),
/// in luma levels (0..255).
fn ll_band(image: &RgbImage) -> Vec<f32> {
    let luma: Vec<f32> = image
        .as_raw()
        .chunks_exact(3)
        .map(|p| (0.299 * f32::from(p[0]) + 0.587 * f32::from(p[1]) + 0.114 * f32::from(p[2])) / 255.0)
        .collect();
    let canon = media::resize_plane(&luma, image.dimensions(), (CANON, CANON), FilterType::Bilinear);
    let side = CANON as usize;
    let mut ll = vec![0.0f32; LL * LL];
    for (i, value) in ll.iter_mut().enumerate() {
        let at = (i / LL) * 2 * side + (i % LL) * 2;
        let sum = canon[at] + canon[at + 1] + canon[at + side] + canon[at + side + 1];
        *value = sum / 4.0 * 255.0;
    }
    ll
}

/// Adds an LL-band change to the image: the inverse Haar step with the detail bands kept
/// (each 2×2 moves with its mean), upsampled to the image, added to R, G and B.
fn add_luma(image: &mut RgbImage, delta_ll: &[f32]) {
    let side = CANON as usize;
    let canon: Vec<f32> = (0..side * side)
        .map(|i| delta_ll[(i / side / 2) * LL + (i % side) / 2])
        .collect();
    let full = media::resize_plane(&canon, (CANON, CANON), image.dimensions(), FilterType::Bilinear);
    for (pixel, change) in image.pixels_mut().zip(full) {
        for channel in &mut pixel.0 {
            // Clamp, + 0.5, truncate: round() without a libm call per sample.
            *channel = ((f32::from(*channel) + change).clamp(0.0, 255.0) + 0.5) as u8;
        }
    }
}

fn read_block(ll: &[f32], block: usize) -> [f32; BLOCK * BLOCK] {
    let (bx, by) = (block % BLOCKS * BLOCK, block / BLOCKS * BLOCK);
    let mut out = [0.0f32; BLOCK * BLOCK];
    for row in 0..BLOCK {
        out[row * BLOCK..(row + 1) * BLOCK].copy_from_slice(&ll[(by + row) * LL + bx..(by + row) * LL + bx + BLOCK]);
    }
    out
}

fn write_block(ll: &mut [f32], block: usize, values: &[f32; BLOCK * BLOCK]) {
    let (bx, by) = (block % BLOCKS * BLOCK, block / BLOCKS * BLOCK);
    for row in 0..BLOCK {
        ll[(by + row) * LL + bx..(by + row) * LL + bx + BLOCK].copy_from_slice(&values[row * BLOCK..(row + 1) * BLOCK]);
    }
}

impl Layout {
    /// Orthonormal 2-D DCT-II of an 8×8 block, in place (row-major, [row][column]).
    fn forward(&self, block: &mut [f32; BLOCK * BLOCK]) {
        self.separable(block, |line| {
            self.dct.process_dct2(line);
            let n = BLOCK as f32;
            line[0] *= (1.0 / n).sqrt();
            for v in &mut line[1..] {
                *v *= (2.0 / n).sqrt();
            }
        });
    }

    /// Inverse of `forward` (orthonormal DCT-III).
    fn inverse(&self, block: &mut [f32; BLOCK * BLOCK]) {
        self.separable(block, |line| {
            let n = BLOCK as f32;
            // rustdct's DCT-III is x_n = X_0/2 + Σ X_k cos(..): undo the orthonormal scales.
            line[0] *= 2.0 * (1.0 / n).sqrt();
            for v in &mut line[1..] {
                *v *= (2.0 / n).sqrt();
            }
            self.dct.process_dct3(line);
        });
    }

    /// Applies a 1-D transform to every row, then every column.
    fn separable(&self, block: &mut [f32; BLOCK * BLOCK], transform: impl Fn(&mut [f32])) {
        for row in block.chunks_exact_mut(BLOCK) {
            transform(row);
        }
        let mut column = [0.0f32; BLOCK];
        for c in 0..BLOCK {
            for r in 0..BLOCK {
                column[r] = block[r * BLOCK + c];
            }
            transform(&mut column);
            for r in 0..BLOCK {
                block[r * BLOCK + c] = column[r];
            }
        }
    }
}

/// A fixed, portable pseudo-random stream (SplitMix64): the layout must never change with
/// a dependency's version.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_under_the_minimum_side_are_refused_both_ways() {
        let small = RgbImage::new(MIN_SIDE - 1, 300);
        assert_eq!(
            embed(&small, Uuid::nil()).err(),
            Some(TooSmall {
                width: MIN_SIDE - 1,
                height: 300
            })
        );
        assert!(detect(&small).is_err());
    }

    #[test]
    fn the_payload_round_trips_through_its_bits() {
        let id = Uuid::new_v4();
        let bits = payload(id);
        assert_eq!(bits.len(), PAYLOAD_BITS);
        assert_eq!(Uuid::from_u128(to_number(&bits[..ID_BITS])), id);
        assert_eq!(LAYOUT.slots.len(), BLOCKS * BLOCKS * COEFFS_PER_BLOCK);
        let mut copies = [0; PAYLOAD_BITS];
        LAYOUT.slots.iter().for_each(|s| copies[s.bit] += 1);
        assert!(copies.iter().all(|c| (3..=4).contains(c)), "{copies:?}");
    }

    #[test]
    fn the_dct_pair_is_orthonormal() {
        let mut block = [0.0f32; BLOCK * BLOCK];
        block
            .iter_mut()
            .enumerate()
            .for_each(|(i, v)| *v = (i * 37 % 255) as f32);
        let original = block;
        LAYOUT.forward(&mut block);
        let energy = |b: &[f32]| b.iter().map(|v| v * v).sum::<f32>();
        assert!((energy(&block) / energy(&original) - 1.0).abs() < 1e-4);
        LAYOUT.inverse(&mut block);
        assert!(block.iter().zip(original).all(|(a, b)| (a - b).abs() < 1e-2));
    }
}
