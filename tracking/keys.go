package tracking

// The tracker's keys in the index. Run ids, file paths and metric keys
// hold no NUL, so NUL separates them.
//
//	tr/r/<id>                        Info, JSON
//	tr/a/<id>                        present while the run has work in flight
//	tr/e/<id>                        the rejected lines, JSON
//	tr/s/<id>\0<path>                a tracked file's state, JSON
//	tr/p/<id>\0<path>\0<key>\0<n>    points block n (4 bytes, big-endian)
//	tr/d/<id>\0<path>\0<key>         the downsample: uvarint points, then series encoding
//	tr/o/<id>                        the run's last publish (pubRecord), JSON
//	tr/i/<id>                        where an imported run came from (importRecord), JSON

import "encoding/binary"

func infoKey(id string) []byte   { return []byte("tr/r/" + id) }
func activeKey(id string) []byte { return []byte("tr/a/" + id) }
func errorsKey(id string) []byte { return []byte("tr/e/" + id) }

func sourcePrefix(id string) []byte           { return []byte("tr/s/" + id + "\x00") }
func sourceKey(id, path string) []byte        { return []byte("tr/s/" + id + "\x00" + path) }
func pointsPrefix(id string) []byte           { return []byte("tr/p/" + id + "\x00") }
func pointsPathPrefix(id, path string) []byte { return []byte("tr/p/" + id + "\x00" + path + "\x00") }
func downsamplePrefix(id string) []byte       { return []byte("tr/d/" + id + "\x00") }
func downsamplePathPrefix(id, path string) []byte {
	return []byte("tr/d/" + id + "\x00" + path + "\x00")
}
func downsampleKey(id, path, key string) []byte {
	return []byte("tr/d/" + id + "\x00" + path + "\x00" + key)
}

func blockKey(id, path, key string, n int64) []byte {
	k := []byte("tr/p/" + id + "\x00" + path + "\x00" + key + "\x00")
	return binary.BigEndian.AppendUint32(k, uint32(n))
}
