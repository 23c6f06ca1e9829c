/**
 * @file
 * @brief tinycnn/data.h - datasets (MNIST/Fashion-MNIST IDX, CIFAR-10 binary,
 * SVHN .mat), seeded per-sample transforms, random splits, and a batch loader
 * with a background prefetch thread. Included by <libtinycnn.h>.
 *
 * A dataset holds N images of uint8 pixels (C,H,W) and int32 labels in host
 * memory. Loaders validate every header, dimension and file size before they
 * allocate, so a truncated or hostile file gives TC_EFORMAT with a message
 * naming the file, never a crash or an allocation the file cannot back.
 *
 * Randomness is counter-based (Philox): a shuffle is a function of (seed,
 * epoch), an augmentation of (seed, epoch, sample index). So batches do not
 * depend on thread timing or prefetch depth, and a run resumed from
 * tc_loader_get_state() sees the very batches it would have seen.
 */
#ifndef TINYCNN_DATA_H
#define TINYCNN_DATA_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- datasets ---------------------------------------------------------- */

/** N labelled uint8 images (C,H,W) in host memory; opaque. A subset made by
 *  tc_dataset_split() or tc_dataset_subset() is a view of its parent's
 *  samples (an index list) and keeps the parent's data alive. */
typedef struct tc_dataset tc_dataset;

/* Largest accepted image side, channel count and class count. */
#define TC_DATASET_MAX_SIDE 65535    /**< largest image height or width */
#define TC_DATASET_MAX_CHANNELS 4096 /**< largest channel count */
#define TC_DATASET_MAX_CLASSES 65536 /**< largest number of classes */

/**
 * Creates a dataset from memory (copied).
 * @param out     receives the dataset (tc_dataset_destroy()).
 * @param n       number of samples, >= 1.
 * @param channels, height, width  the image shape, each
 *                1..TC_DATASET_MAX_CHANNELS or 1..TC_DATASET_MAX_SIDE.
 * @param num_classes  1..TC_DATASET_MAX_CLASSES.
 * @param pixels  (n,channels,height,width) uint8, row-major.
 * @param labels  (n) int32, each in [0, num_classes).
 * @return TC_OK, TC_EINVAL (NULL, n < 1, a size out of range, a label out of
 *         range), TC_ESHAPE (byte size overflows), TC_ENOMEM.
 */
TC_API tc_status tc_dataset_create(tc_dataset **out, int64_t n, int channels,
                                   int height, int width, int num_classes,
                                   const uint8_t *pixels,
                                   const int32_t *labels);

/**
 * Loads a pair of IDX files (the MNIST format), each raw or gzip-compressed
 * (detected from the content): images with magic 0x00000803 and dims
 * (N,H,W), labels with magic 0x00000801 and dim (N). The dataset has one
 * channel.
 * @param out          receives the dataset (tc_dataset_destroy()).
 * @param images_path  the images file (idx3), raw or .gz.
 * @param labels_path  the labels file (idx1), raw or .gz.
 * @param num_classes  labels must lie in [0, num_classes); 1..256.
 * @return TC_OK, TC_EINVAL, TC_EIO (cannot open or read), TC_EFORMAT (bad
 *         magic, dims, counts that disagree, wrong size, truncated or
 *         corrupt compressed data, trailing bytes, label out of range),
 *         TC_ENOMEM.
 */
TC_API tc_status tc_dataset_load_idx(tc_dataset **out, const char *images_path,
                                     const char *labels_path, int num_classes);

/**
 * Loads MNIST or Fashion-MNIST from `dir`: `train-images-idx3-ubyte` and
 * `train-labels-idx1-ubyte` (train != 0) or `t10k-...` (train == 0), each
 * taken raw when present, else with a `.gz` suffix. 10 classes, (1,28,28)
 * for the real files. Codes as tc_dataset_load_idx().
 */
TC_API tc_status tc_dataset_load_mnist(tc_dataset **out, const char *dir,
                                       int train);

/**
 * Loads CIFAR-10's binary version from `dir` (the `cifar-10-batches-bin`
 * folder): `data_batch_1.bin` .. `data_batch_5.bin` (train != 0) or
 * `test_batch.bin`. Each file is a sequence of records of 1 label byte
 * (0..9) and 3072 pixel bytes (3,32,32); its size must be a non-zero
 * multiple of 3073.
 * @return TC_OK, TC_EINVAL, TC_EIO, TC_EFORMAT, TC_ENOMEM.
 */
TC_API tc_status tc_dataset_load_cifar10(tc_dataset **out, const char *dir,
                                         int train);

/**
 * Loads SVHN's cropped digits (`train_32x32.mat`, `test_32x32.mat`,
 * `extra_32x32.mat`) with libmatio: `X` uint8 of dims (32,32,3,N) and `y`
 * numeric of dims (N,1) holding integers 0..10, where 10 means digit 0
 * (mapped to label 0, as torchvision does). Images come out (3,32,32) with
 * H along MATLAB's first dimension, as torchvision's transpose gives.
 * MAT v5 files (plain or compressed) are checked variable by variable
 * before libmatio reads them (a header may not claim more than the file
 * holds, only numeric and char arrays of rank <= 32); v7.3 (HDF5) files go
 * to libmatio as they are; v4 files are refused (they cannot hold a 4-D X).
 * @return TC_OK, TC_EINVAL, TC_EIO, TC_EFORMAT (missing variable, wrong
 *         class, dims or size, non-integer or out-of-range label), TC_ENOMEM.
 */
TC_API tc_status tc_dataset_load_svhn(tc_dataset **out, const char *mat_path);

/** Releases a dataset; its data lives while subsets or loaders use it.
 *  NULL ok. */
TC_API void tc_dataset_destroy(tc_dataset *ds);

/** Number of samples; -1 for NULL. */
TC_API int64_t tc_dataset_size(const tc_dataset *ds);
/** Image channels (C); -1 for NULL. */
TC_API int tc_dataset_channels(const tc_dataset *ds);
/** Image height (H) in pixels; -1 for NULL. */
TC_API int tc_dataset_height(const tc_dataset *ds);
/** Image width (W) in pixels; -1 for NULL. */
TC_API int tc_dataset_width(const tc_dataset *ds);
/** Number of classes (labels lie in [0, num_classes)); -1 for NULL. */
TC_API int tc_dataset_num_classes(const tc_dataset *ds);

/**
 * Copies sample `index` out.
 * @param ds      the dataset.
 * @param index   0 .. size-1.
 * @param pixels  (C,H,W) uint8 of exactly `bytes` bytes, or NULL (then
 *                `bytes` is ignored).
 * @param bytes   the size of `pixels`: C*H*W.
 * @param label   one int32, or NULL.
 * @return TC_OK, TC_EINVAL (NULL dataset, index out of range), TC_ESHAPE
 *         (`bytes` is not C*H*W).
 */
TC_API tc_status tc_dataset_get(const tc_dataset *ds, int64_t index,
                                uint8_t *pixels, size_t bytes, int32_t *label);

/**
 * A view of `ds` holding samples `indices[0..count)` (copied; repeats
 * allowed) in that order.
 * @return TC_OK, TC_EINVAL (NULL, count < 1, an index out of range),
 *         TC_ENOMEM.
 */
TC_API tc_status tc_dataset_subset(tc_dataset **out, tc_dataset *ds,
                                   const int64_t *indices, int64_t count);

/**
 * Splits `ds` at random into two disjoint views, as torch.utils.data's
 * random_split(ds, [first_count, size - first_count]): a permutation drawn
 * from Philox stream TC_RNG_STREAM_SPLIT keyed by `seed`; the first view
 * takes its first `first_count` entries, the second the rest, in
 * permutation order. The same seed always gives the same split.
 * @param out_first    receives the view of the first `first_count` samples.
 * @param out_second   receives the view of the rest.
 * @param ds           the dataset to split (kept alive by the views).
 * @param first_count  1 .. size-1.
 * @param seed         the split's key: the same seed, the same split.
 * @return TC_OK, TC_EINVAL, TC_ENOMEM. Outputs are written only on success.
 */
TC_API tc_status tc_dataset_split(tc_dataset **out_first,
                                  tc_dataset **out_second, tc_dataset *ds,
                                  int64_t first_count, uint64_t seed);

/**
 * The count tc_dataset_split() needs for a fraction, as random_split's
 * fractional lengths [f, 1-f]: floor(n*f) and floor(n*(1-f)), the
 * remainder handed out round-robin from the first. A product within 1e-9
 * (relative) below an integer counts as that integer, so f = 0.8 splits 10
 * as [0.8, 0.2] does (8, 2) although 1-0.8 is not 0.2 in binary.
 * @return the count, or -1 when n < 2 or f is not in (0,1) or the split
 * would leave a side empty.
 */
TC_API int64_t tc_dataset_split_count(int64_t n, double fraction);

/* ---- transforms -------------------------------------------------------- */

/** A pipeline of per-sample operations turning uint8 pixels (C,H,W) into
 *  float (C',H',W'); opaque. Operations run in the order added, on float
 *  values that start as the raw pixel values 0..255. */
typedef struct tc_transform tc_transform;

/** Most operations a pipeline holds. */
#define TC_TRANSFORM_MAX_OPS 32

/** Creates an empty pipeline (it only converts to float, keeping 0..255).
 *  @return TC_OK, TC_EINVAL, TC_ENOMEM. */
TC_API tc_status tc_transform_create(tc_transform **out);
/** NULL ok. */
TC_API void tc_transform_destroy(tc_transform *tf);

/** @name Transform operations
 * Each add returns TC_OK, TC_EINVAL (NULL, bad value, pipeline full).
 * @{ */

/** x / 255 (torchvision ToTensor's scaling, same float arithmetic). */
TC_API tc_status tc_transform_add_to_float(tc_transform *tf);
/** Constant padding, sides in torch.nn.functional.pad's order: (left,
 *  right, top, bottom), each 0..TC_DATASET_MAX_SIDE, filled with `value`. */
TC_API tc_status tc_transform_add_pad(tc_transform *tf, int left, int right,
                                      int top, int bottom, float value);
/** Repeats a single channel three times (needs C == 1). */
TC_API tc_status tc_transform_add_gray_to_rgb(tc_transform *tf);
/**
 * (x - mean[c]) / std[c] as torchvision Normalize. `channels` values are
 * copied; channels == 1 applies to every channel, otherwise it must equal C.
 * Every std must be finite and non-zero.
 */
TC_API tc_status tc_transform_add_normalize(tc_transform *tf, int channels,
                                            const float *mean,
                                            const float *std);
/**
 * torchvision RandomCrop((height, width), padding): pads every side by
 * `padding` with `fill`, then takes a (height, width) window at top
 * i ~ U{0..H+2p-height}, then left j ~ U{0..W+2p-width}.
 */
TC_API tc_status tc_transform_add_random_crop(tc_transform *tf, int height,
                                              int width, int padding,
                                              float fill);
/** Mirrors left-right with probability p in [0,1] (RandomHorizontalFlip). */
TC_API tc_status tc_transform_add_random_hflip(tc_transform *tf, float p);
/** @} */

/**
 * The output shape for input shape `in_chw` (C,H,W).
 * @return TC_OK, TC_EINVAL (NULL), TC_ESHAPE (`in_chw` outside the
 *         dataset limits, or an operation does not fit the shape it gets,
 *         e.g. normalize's channels, a crop larger than its padded input, a
 *         side growing past TC_DATASET_MAX_SIDE or an image past 2^31
 *         elements).
 */
TC_API tc_status tc_transform_output_shape(const tc_transform *tf,
                                           const int64_t in_chw[3],
                                           int64_t out_chw[3]);

/**
 * Applies the pipeline to one sample. Random operations draw from Philox
 * stream TC_RNG_STREAM_AUGMENT keyed by (seed, epoch, index), so a sample's
 * augmentation depends on nothing else (epoch is taken modulo 2^22, index
 * must be below 2^32). Thread-safe on a shared pipeline.
 * A pipeline without random operations (an evaluation or inference
 * pipeline: to_float, pad, gray_to_rgb, normalize) never reads seed, epoch
 * and index: pass 0, 0, 0, the documented defaults for that case.
 * @param tf      the pipeline.
 * @param pixels  (C,H,W) uint8 with C,H,W = in_chw.
 * @param in_chw  the input shape (C,H,W).
 * @param out     (C',H',W') float, `out_count` = C'*H'*W' elements.
 * @param out_count  the room in `out`, in floats (see
 *                tc_transform_output_shape()).
 * @param seed, epoch, index  the key of the random operations, as above.
 * @return TC_OK, TC_EINVAL, TC_ESHAPE, TC_ENOMEM (a scratch buffer).
 */
TC_API tc_status tc_transform_apply(const tc_transform *tf,
                                    const uint8_t *pixels,
                                    const int64_t in_chw[3], float *out,
                                    size_t out_count, uint64_t seed,
                                    uint64_t epoch, uint64_t index);

/* ---- loader ------------------------------------------------------------ */

/** Batches of a dataset as tensors on a backend; opaque. Not for concurrent
 *  use from several threads (its own prefetch thread is internal). */
typedef struct tc_loader tc_loader;

/** A loader seed that means "tc_get_seed() when the loader is created". */
#define TC_LOADER_SEED_GLOBAL UINT64_MAX

/** Options of tc_loader_create() (torch.utils.data.DataLoader's, with a
 *  sampler's sharding). */
typedef struct tc_loader_options {
  size_t struct_size;  /**< sizeof(tc_loader_options) as compiled */
  int64_t batch_size;  /**< >= 1; default 1 (as torch's DataLoader) */
  int32_t shuffle;     /**< reshuffle every epoch; default 0 */
  int32_t drop_last;   /**< drop a last partial batch; default 0 */
  uint64_t seed;       /**< shuffle and augmentation; default
                            TC_LOADER_SEED_GLOBAL */
  int32_t prefetch;    /**< batches a background thread prepares ahead;
                            0: none, prepare in tc_loader_next; default 2;
                            at most 64 */
  int32_t reserved0;   /**< must be 0 */
  tc_backend *backend; /**< where batches go; NULL: a CPU backend */
  int32_t num_shards;  /**< data-parallel ranks sharing each batch;
                            default 1 (0 also means 1) */
  int32_t shard;       /**< this rank's shard, in [0, num_shards); its
                            share of every batch of b samples (batch_size,
                            or less for the last) is the contiguous slice
                            [b*shard/num_shards, b*(shard+1)/num_shards):
                            every sample once per epoch across shards, the
                            same permutation on every shard (seed) */
} tc_loader_options;

/** A tc_loader_options with its struct_size set and the defaults. */
#define TC_LOADER_OPTIONS_INIT                                                 \
  {                                                                            \
    sizeof(tc_loader_options), 1, 0, 0, TC_LOADER_SEED_GLOBAL, 2, 0, NULL, 1,  \
        0                                                                      \
  }

/** Fills `o` (of `struct_size` bytes, <= ours) with the defaults.
 *  @return TC_OK, TC_EINVAL, TC_EVERSION (struct_size larger than ours). */
TC_API tc_status tc_loader_options_init(tc_loader_options *o,
                                        size_t struct_size);

/**
 * Creates a loader over `ds` (kept alive by a reference) with a copy of the
 * pipeline `tf` (NULL: only tc_transform_add_to_float), starting at epoch 0,
 * batch 0. With prefetch > 0 a thread starts preparing batches at once.
 * Everything a batch needs is allocated here, so tc_loader_next() allocates
 * nothing.
 * @return TC_OK, TC_EINVAL (NULL, batch_size < 1, prefetch outside 0..64,
 *         reserved0 != 0, drop_last with batch_size above the dataset's
 *         size: no batch at all), TC_ESHAPE (the pipeline does not fit the
 *         dataset's images), TC_EVERSION, TC_ENOTFOUND/TC_EUNSUPPORTED (no
 *         backend), TC_ENOMEM, TC_EBACKEND (thread creation failed).
 */
TC_API tc_status tc_loader_create(tc_loader **out, tc_dataset *ds,
                                  const tc_transform *tf,
                                  const tc_loader_options *opts);

/**
 * The next batch: x float (B,C',H',W') and y int32 (B), B = batch_size, or
 * less for a last partial batch. Both tensors belong to the loader and stay
 * valid until the next call to tc_loader_next/set_state/destroy. At the end
 * of an epoch it returns TC_OK with *out_x = *out_y = NULL once; the call
 * after that starts the next epoch (reshuffled when shuffle is on).
 * @return TC_OK, TC_EINVAL, or the backend's error copying the batch.
 */
TC_API tc_status tc_loader_next(tc_loader *l, tc_tensor **out_x,
                                tc_tensor **out_y);

/** Batches per epoch; -1 for NULL. */
TC_API int64_t tc_loader_num_batches(const tc_loader *l);

/**
 * The position of the next batch: `epoch` and `batch` index in it (batch ==
 * num_batches means the end-of-epoch signal comes next). Save both to
 * resume exactly. @return TC_OK, TC_EINVAL.
 */
TC_API tc_status tc_loader_get_state(const tc_loader *l, int64_t *out_epoch,
                                     int64_t *out_batch);

/**
 * Moves to (epoch, batch), discarding prefetched batches; the following
 * batches are the ones an uninterrupted loader gives there.
 * @param l      the loader.
 * @param epoch  0 .. 2^22-1.
 * @param batch  0 .. num_batches.
 * @return TC_OK, TC_EINVAL.
 */
TC_API tc_status tc_loader_set_state(tc_loader *l, int64_t epoch,
                                     int64_t batch);

/** Stops the prefetch thread (also mid-epoch) and frees the loader. NULL
 *  ok. */
TC_API void tc_loader_destroy(tc_loader *l);

#ifdef __cplusplus
}
#endif
#endif /* TINYCNN_DATA_H */
