package main

// The object stores log shipping (serve's log.ship.url) and the log
// readers (--logs URL) reach: gocloud.dev/blob drivers, each registering
// its URL scheme (s3://, gs://, azblob://, file://) with blob's default
// URL mux when imported. Only these four are linked in.
import (
	_ "gocloud.dev/blob/azureblob"
	_ "gocloud.dev/blob/fileblob"
	_ "gocloud.dev/blob/gcsblob"
	_ "gocloud.dev/blob/s3blob"
)
