package handlers

// Bounds of what one request may ask for. They belong to the API, not to a
// deployment, so they are constants rather than configuration; the request
// size limits in server/limits.go are sized for them.
const (
	// maxIDFilter is the most token ids one M2M GetTokens or DeleteTokens
	// may name in id_filter.
	maxIDFilter = 1000
	// maxTokenName is the longest name, in bytes, of an M2M token
	// (token_name) or an API token (name).
	maxTokenName = 200
)
