//! Dataset readers: generated files in the exact IDX and CIFAR formats read back exactly; bad
//! files give errors that name the file and what was expected.

use std::io::Write;
use std::path::Path;

use lagom::data::cifar::{encode_records, IMAGE_BYTES};
use lagom::data::idx::{encode_images, encode_labels, IdxImages};
use lagom::data::{load, load_train, DataError, DatasetName, Selection};

mod cli_support;

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).expect("gzip");
    e.finish().expect("gzip")
}

fn images(count: usize, seed: u8) -> IdxImages {
    IdxImages {
        count,
        rows: 5,
        cols: 4,
        pixels: (0..count * 20)
            .map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed))
            .collect(),
    }
}

/// Writes the four IDX files, gzipped or not.
fn write_idx(dir: &Path, gzipped: bool, train: &IdxImages, test: &IdxImages) {
    let labels = |n: usize| (0..n).map(|i| (i % 10) as u8).collect::<Vec<_>>();
    let files = [
        ("train-images-idx3-ubyte", encode_images(train)),
        (
            "train-labels-idx1-ubyte",
            encode_labels(&labels(train.count)),
        ),
        ("t10k-images-idx3-ubyte", encode_images(test)),
        ("t10k-labels-idx1-ubyte", encode_labels(&labels(test.count))),
    ];
    for (name, bytes) in files {
        if gzipped {
            std::fs::write(dir.join(format!("{name}.gz")), gz(&bytes)).expect("write");
        } else {
            std::fs::write(dir.join(name), bytes).expect("write");
        }
    }
}

#[test]
fn idx_files_raw_and_gzipped_read_back_exactly() {
    for gzipped in [false, true] {
        let dir = tempfile::tempdir().expect("tempdir");
        let (train, test) = (images(30, 1), images(12, 2));
        write_idx(dir.path(), gzipped, &train, &test);
        let split = load(DatasetName::FashionMnist, Some(dir.path()), 0).expect("reads");
        assert_eq!(split.train.pixels.in_memory(), Some(&train.pixels[..]));
        assert_eq!(split.test.pixels.in_memory(), Some(&test.pixels[..]));
        assert_eq!(
            (split.train.height, split.train.width, split.train.channels),
            (5, 4, 1)
        );
        assert_eq!(
            split.train.labels,
            (0..30).map(|i| (i % 10) as u8).collect::<Vec<_>>()
        );
        assert_eq!(split.test.len(), 12);
    }
}

#[test]
fn truncated_and_wrong_magic_idx_files_name_the_file_and_the_expectation() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_idx(dir.path(), false, &images(30, 1), &images(12, 2));
    let path = dir.path().join("train-images-idx3-ubyte");
    let full = std::fs::read(&path).expect("read");
    std::fs::write(&path, &full[..full.len() - 7]).expect("truncate");
    let err = load(DatasetName::FashionMnist, Some(dir.path()), 0).expect_err("truncated");
    assert!(
        matches!(err, DataError::Truncated { expected, found, .. } if expected == 16 + 600 && found == 609)
    );
    let msg = err.to_string();
    assert!(
        msg.contains("train-images-idx3-ubyte") && msg.contains("truncated"),
        "{msg}"
    );
    assert!(
        msg.contains("dataset-fashion-mnist"),
        "says how to get the data: {msg}"
    );

    let mut wrong = full.clone();
    wrong[3] = 0x01; // a label file's magic in an image file
    std::fs::write(&path, &wrong).expect("write");
    let err = load(DatasetName::FashionMnist, Some(dir.path()), 0).expect_err("bad magic");
    assert!(
        matches!(
            err,
            DataError::BadMagic {
                expected: 0x803,
                found: 0x801,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("train-images-idx3-ubyte"));

    std::fs::write(&path, &gz(&full)[..40]).expect("write");
    let err = load(DatasetName::FashionMnist, Some(dir.path()), 0).expect_err("corrupt gzip");
    assert!(err.to_string().contains("train-images-idx3-ubyte"), "{err}");

    std::fs::remove_file(&path).expect("remove");
    let err = load(DatasetName::FashionMnist, Some(dir.path()), 0).expect_err("missing");
    assert!(matches!(err, DataError::Missing { .. }), "{err}");
    let err =
        load(DatasetName::FashionMnist, Some(&dir.path().join("nope")), 0).expect_err("no dir");
    assert!(
        err.to_string()
            .contains("apt-get install dataset-fashion-mnist"),
        "{err}"
    );
}

#[test]
fn a_selected_training_set_is_the_same_examples_as_a_subset_of_the_whole() {
    let pick = [17usize, 3, 29, 0, 8];
    for gzipped in [false, true] {
        let dir = tempfile::tempdir().expect("tempdir");
        write_idx(dir.path(), gzipped, &images(30, 1), &images(12, 2));
        let whole = load(DatasetName::FashionMnist, Some(dir.path()), 0).expect("reads");
        let mut seen = None;
        let part = load_train(DatasetName::FashionMnist, Some(dir.path()), 0, |n| {
            seen = Some(n);
            Selection::only(n, &pick)
        })
        .expect("reads the selection");
        assert_eq!(seen, Some(30), "the selector is given the set's size");
        assert_eq!(part, whole.train.subset(&pick).expect("subset"));
        assert_eq!(part.labels, [7, 3, 9, 0, 8]);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    for i in 1..=5u8 {
        let labels: Vec<(u8, u8)> = (0..3).map(|j| (0, (i + j) % 10)).collect();
        let bytes = encode_records(&cifar_pixels(3, i), &labels, false);
        std::fs::write(dir.path().join(format!("data_batch_{i}.bin")), bytes).expect("write");
    }
    std::fs::write(
        dir.path().join("test_batch.bin"),
        encode_records(&cifar_pixels(1, 9), &[(0, 1)], false),
    )
    .expect("write");
    let whole = load(DatasetName::Cifar10, Some(dir.path()), 0).expect("reads");
    let across_files = [14usize, 2, 7, 3];
    let part = load_train(DatasetName::Cifar10, Some(dir.path()), 0, |n| {
        Selection::only(n, &across_files)
    })
    .expect("reads the selection");
    // A worker's CIFAR shard stays in the files: the same labels, and the same images read per
    // batch, as the subset of the whole set held in memory.
    let subset = whole.train.subset(&across_files).expect("subset");
    assert!(
        part.pixels.in_memory().is_none(),
        "pixels left in the files"
    );
    assert_eq!(part.labels, subset.labels);
    let order = [3usize, 0, 2, 1, 2];
    let none = None::<&mut rand_chacha::ChaCha8Rng>;
    assert_eq!(
        part.batch(&order, none).expect("reads the images"),
        subset
            .batch(&order, None::<&mut rand_chacha::ChaCha8Rng>)
            .expect("in memory")
    );
    // A subset of the file-backed shard reads through the same open files.
    let picked = part.subset(&[2, 0]).expect("subset of the shard");
    assert!(picked.pixels.in_memory().is_none());
    let none = None::<&mut rand_chacha::ChaCha8Rng>;
    assert_eq!(
        picked.batch(&[0, 1], none).expect("reads"),
        subset
            .batch(&[2, 0], None::<&mut rand_chacha::ChaCha8Rng>)
            .expect("in memory")
    );
    let err = load_train(DatasetName::Cifar10, Some(dir.path()), 0, |n| {
        Selection::only(n, &[n])
    })
    .expect_err("past the end");
    assert!(
        matches!(err, DataError::OutOfRange { index: 15, len: 15 }),
        "{err}"
    );
    // A file cut short after loading: the batch that needs it fails, naming it; the others read.
    let batch_3 = dir.path().join("data_batch_3.bin");
    let cut = std::fs::OpenOptions::new()
        .write(true)
        .open(&batch_3)
        .expect("open");
    cut.set_len(3073).expect("truncate");
    let none = None::<&mut rand_chacha::ChaCha8Rng>;
    let err = part.batch(&[2], none).expect_err("record 7 is gone");
    assert!(err.to_string().contains("data_batch_3.bin"), "{err}");
    assert!(part
        .batch(&[0, 1, 3], None::<&mut rand_chacha::ChaCha8Rng>)
        .is_ok());
}

#[test]
fn a_header_claiming_more_than_the_file_holds_is_refused_before_allocating() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_idx(dir.path(), false, &images(30, 1), &images(12, 2));
    let path = dir.path().join("train-images-idx3-ubyte");
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[4..8].copy_from_slice(&u32::MAX.to_be_bytes()); // 4 G images of 20 bytes
    std::fs::write(&path, &bytes).expect("write");
    let err = load(DatasetName::FashionMnist, Some(dir.path()), 0).expect_err("huge count");
    assert!(
        matches!(err, DataError::Truncated { expected, found, .. }
            if expected == 16 + 20 * u64::from(u32::MAX) && found == bytes.len() as u64),
        "{err}"
    );
    let gz_path = dir.path().join("huge.gz");
    std::fs::write(&gz_path, gz(&bytes)).expect("write");
    let err = lagom::data::idx::read_images(&gz_path, "hint").expect_err("huge count, gzipped");
    assert!(err.to_string().contains("gzip file can hold"), "{err}");

    let mut trailing = encode_images(&images(3, 1));
    trailing.extend_from_slice(&[1, 2, 3]);
    std::fs::write(&gz_path, gz(&trailing)).expect("write");
    let err = lagom::data::idx::read_images(&gz_path, "hint").expect_err("trailing bytes");
    assert!(
        err.to_string()
            .contains("79 bytes, but the header describes 76"),
        "{err}"
    );
}

fn cifar_pixels(count: usize, seed: u8) -> Vec<u8> {
    (0..count * IMAGE_BYTES)
        .map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed))
        .collect()
}

#[test]
fn cifar10_and_cifar100_binaries_read_back_exactly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut all_train = Vec::new();
    let mut all_labels = Vec::new();
    for i in 1..=5u8 {
        let px = cifar_pixels(3, i);
        let labels: Vec<(u8, u8)> = (0..3).map(|j| (0, (i + j) % 10)).collect();
        std::fs::write(
            dir.path().join(format!("data_batch_{i}.bin")),
            encode_records(&px, &labels, false),
        )
        .expect("write");
        all_train.extend(px);
        all_labels.extend(labels.iter().map(|l| l.1));
    }
    let test_px = cifar_pixels(4, 9);
    let test_labels: Vec<(u8, u8)> = (0..4).map(|j| (0, j)).collect();
    std::fs::write(
        dir.path().join("test_batch.bin"),
        encode_records(&test_px, &test_labels, false),
    )
    .expect("write");
    let split = load(DatasetName::Cifar10, Some(dir.path()), 0).expect("reads");
    assert_eq!(split.train.pixels.in_memory(), Some(&all_train[..]));
    assert_eq!(split.train.labels, all_labels);
    assert_eq!(split.test.pixels.in_memory(), Some(&test_px[..]));
    assert_eq!(
        (
            split.train.channels,
            split.train.height,
            split.train.width,
            split.train.classes
        ),
        (3, 32, 32, 10)
    );

    let dir100 = tempfile::tempdir().expect("tempdir");
    let px = cifar_pixels(5, 3);
    let labels: Vec<(u8, u8)> = (0..5).map(|j| (j * 3, 90 + j)).collect();
    std::fs::write(
        dir100.path().join("train.bin"),
        encode_records(&px, &labels, true),
    )
    .expect("write");
    std::fs::write(
        dir100.path().join("test.bin"),
        encode_records(&px, &labels, true),
    )
    .expect("write");
    let split = load(DatasetName::Cifar100, Some(dir100.path()), 0).expect("reads");
    assert_eq!(split.train.labels, vec![90, 91, 92, 93, 94], "fine labels");
    assert_eq!(split.train.pixels.in_memory(), Some(&px[..]));
    assert_eq!(split.train.classes, 100);

    // A CIFAR-100 file where CIFAR-10 is expected: sizes do not divide into records.
    std::fs::copy(
        dir100.path().join("train.bin"),
        dir.path().join("data_batch_2.bin"),
    )
    .expect("copy");
    let err = load(DatasetName::Cifar10, Some(dir.path()), 0).expect_err("wrong format");
    assert!(matches!(err, DataError::Truncated { .. }), "{err}");
    assert!(err.to_string().contains("data_batch_2.bin"), "{err}");
    std::fs::remove_file(dir.path().join("test_batch.bin")).expect("remove");
    std::fs::copy(
        dir.path().join("data_batch_1.bin"),
        dir.path().join("data_batch_2.bin"),
    )
    .expect("copy");
    let err = load(DatasetName::Cifar10, Some(dir.path()), 0).expect_err("missing");
    assert!(
        err.to_string().contains("test_batch.bin") && err.to_string().contains("binary version"),
        "{err}"
    );
}

#[test]
fn the_installed_fashion_mnist_has_its_published_shape() {
    if !cli_support::fashion_mnist_present("fashion-mnist shape") {
        return;
    }
    let split = load(DatasetName::FashionMnist, None, 0).expect("reads the Debian package");
    assert_eq!((split.train.len(), split.test.len()), (60_000, 10_000));
    assert_eq!((split.train.height, split.train.width), (28, 28));
    let mut counts = [0usize; 10];
    for &l in &split.test.labels {
        counts[l as usize] += 1;
    }
    assert!(
        counts.iter().all(|&c| c == 1000),
        "balanced test set: {counts:?}"
    );
}

#[test]
fn the_synthetic_set_is_seeded() {
    let a = load(DatasetName::Synthetic, None, 4).expect("generated");
    let b = load(DatasetName::Synthetic, None, 4).expect("generated");
    let c = load(DatasetName::Synthetic, None, 5).expect("generated");
    assert_eq!(a, b);
    assert_ne!(a.train.pixels, c.train.pixels);
    assert!(a.train.labels.iter().all(|&l| l < 10));
}
