// Package azure is a cas.Store in an Azure Blob Storage container, written
// against github.com/Azure/azure-sdk-for-go/sdk/storage/azblob.
//
// # Layout
//
// Everything lives under an optional blob-name prefix inside one container,
// exactly as in cas/s3, cas/gcs and cas/local:
//
//	<prefix>/objects/ab/abcd…   one block blob per cas object, named by the
//	                            64-hex id and fanned out by its first two
//	                            hex digits
//	<prefix>/refs/<name>        a ref: the hex id and a newline; the "/" in a
//	                            ref name is just part of the blob name
//
// Keeping one layout everywhere means a store can be copied between
// backends with a plain sync tool (azcopy, rclone) and still be read by any
// of them.
//
// # Credentials
//
// Open uses the first of: Options.Client, as is; Options.ConnectionString;
// Options.Credential, an azcore.TokenCredential, for Options.Endpoint or
// the account's default endpoint; AZURE_STORAGE_CONNECTION_STRING, unless
// Options names an account, endpoint or credential; the shared key in
// AZURE_STORAGE_KEY for the account (Options.Account, else
// AZURE_STORAGE_ACCOUNT); and last, unsigned requests to the account or
// endpoint, which suit a public container or an Endpoint that carries a SAS
// token. Entra ID (managed identities, az login) is reached by passing a
// credential from github.com/Azure/azure-sdk-for-go/sdk/azidentity as
// Options.Credential, or a client made with one as Options.Client; this
// package does not import azidentity, so that those who use keys do not
// build it in.
//
// No error names a key or a SAS token: the SDK's errors show a request's
// path without its query, and transport errors are shown here with the
// query removed.
//
// # Durability
//
// A Put Blob (or Put Block List) is durable and strongly consistent once it
// returns: at once visible to every reader and to listings. Put only
// returns after it has, so every object Put before a CreateRef is durable
// before the ref exists, as cas.Refs requires, with no buffering here;
// Close has nothing to flush.
//
// # Why refs use a conditional create
//
// A ref is what makes a version name such as "iris/v1" atomic and unique:
// among concurrent creators exactly one must win. Reading the properties and
// then writing cannot give that: two writers can both see "absent" and both
// write, the later silently replacing the earlier. So CreateRef uploads with
// "If-None-Match: *", which the service evaluates atomically: the first
// write of the name succeeds, and every other fails with 409
// BlobAlreadyExists (what Azure and Azurite answer for a blob that exists)
// or 412 ConditionNotMet (the generic answer to a failed condition); both
// are reported as cas.ErrExists. The package's tests race sixteen creators
// against one name to check it.
//
// One corner remains: the SDK retries a request whose response was lost,
// and if the first attempt of a conditional upload did succeed, the retry
// sees the blob and CreateRef reports ErrExists although this caller won.
// The ref then points at the caller's own id, which GetRef shows.
//
// # Retries
//
// The SDK already retries each request a few times (408, 429, 500, 502, 503,
// 504 and transport errors). Transient tells a retry layer above the store
// which of the errors that still come out are worth another try.
package azure
