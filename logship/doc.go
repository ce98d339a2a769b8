// Package logship moves finished decision-log files to an object store and
// back: a Shipper uploads them (s3://, gs://, azblob://, file:// — any
// gocloud.dev/blob bucket), and Fetch copies a shipped prefix to a local
// directory that decisionlog's Reader reads like any log root.
//
// # Shipping
//
//	bucket, err := blob.OpenBucket(ctx, "s3://logs?region=eu-west-1&prefix=routelab/")
//	s, err := logship.New(logship.Opts{Root: "logs", Bucket: bucket, DeleteAfterUpload: true})
//	go s.Run(ctx) // a pass every Interval until ctx ends
//
// A pass lists the root's finished files (decisionlog.FinishedFiles:
// *.parquet, renamed into place only when complete; never the open
// *.parquet.tmp or their *.parquet.wal segments, nor _stats) and uploads
// each one not yet shipped under its path relative to the root, so the
// bucket keeps the Hive layout (decisions/dt=…/hour=…/dec-….parquet) that
// DuckDB, Spark or Trino read directly. For each file:
//
//  1. upload with its MD5 as ContentMD5 (the bucket refuses the write
//     when the bytes it received differ), with retries and exponential
//     backoff (MaxAttempts, InitialBackoff, MaxBackoff);
//  2. verify: the object's size, and its MD5 when the store reports one
//     (else the object is read back and hashed);
//  3. append {key, size, md5} to the manifest ROOT/_ship/manifest.jsonl
//     and fsync it;
//  4. delete the local file (DeleteAfterUpload) — only now.
//
// # Crashes: nothing lost, nothing duplicated
//
// Keys are the files' relative paths and uploads are whole-object writes
// (an object store commits an object at Close or not at all; fileblob
// writes a temporary file and renames it), so an upload repeated after a
// crash overwrites the same object with the same bytes: a kill -9 at any
// point leaves the local file (deleted only after step 3) and at worst an
// object that the next pass rewrites. A file listed in the manifest but
// still on disk (a crash between 3 and 4) is deleted without uploading
// again; the manifest's torn last line (a crash during 3) is ignored, and
// that file is checked against the bucket (size and MD5) before anything
// is uploaded again. TestKill9MidUpload kills a real shipper process
// mid-upload and after upload, restarts it, and finds the bucket holding
// every file exactly once, byte for byte. With fileblob, a kill during an
// upload can leave a *.tmp file in the temporary directory (the OS's, or
// the bucket's with no_tmp_dir): not an object, never listed.
//
// # Metrics
//
// Collectors returns Prometheus collectors: routelab_logship_uploaded_files_total,
// routelab_logship_uploaded_bytes_total, routelab_logship_failed_uploads_total
// (files whose attempts were all exhausted in a pass; retried next pass),
// routelab_logship_pending_files (finished files not yet shipped, as of the
// last pass) and routelab_logship_last_pass_timestamp_seconds.
//
// # Reading shipped logs
//
// Fetch(ctx, bucket, dir, opts) downloads every finished file under the
// bucket's prefix (keys that decisionlog.IsFinishedKey accepts; with
// opts.From/To, not the decision files of hour partitions outside the
// range) to dir, keeping the layout, each through a temporary name and a
// rename: the
// CLI's --logs accepts a bucket URL this way (replay, train, neural fit,
// calibrate).
//
// The drivers are the program's choice: this package opens nothing by URL
// itself; cmd/routelab imports the four blob drivers it supports.
package logship
