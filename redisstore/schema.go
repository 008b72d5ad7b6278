package redisstore

// Schema exposes the key builders of keys.go to programs that write
// tokend's records directly, such as bench/scale's seeder, so that what they
// write is exactly what the store reads. tokend itself never uses it: every
// write of the service goes through the Store's scripts.
type Schema struct{ k keys }

// NewSchema returns the key builders for prefix ("" means "tokend", as in
// Options).
func NewSchema(prefix string) Schema {
	if prefix == "" {
		prefix = "tokend"
	}
	return Schema{keys{prefix}}
}

func (s Schema) Family(fam string) string             { return s.k.family(fam) }
func (s Schema) Refresh(fam, tokenHash string) string { return s.k.refresh(fam, tokenHash) }
func (s Schema) APIToken(id string) string            { return s.k.apiToken(id) }
func (s Schema) APITokenOwner(owner string) string    { return s.k.apiTokenOwner(owner) }
func (s Schema) M2MToken(owner, id string) string     { return s.k.m2mToken(owner, id) }
func (s Schema) M2MIndex(owner string) string         { return s.k.m2mIndex(owner) }
func (s Schema) M2MBlacklist(owner string) string     { return s.k.m2mBlacklistOf(digest(owner)) }
func (s Schema) M2MDue() string                       { return s.k.m2mDue() }
func (s Schema) Digest(owner string) string           { return digest(owner) }

// M2MOwners is the owners SET an older tokend's sweep walked (SweepM2M
// migrates it).
func (s Schema) M2MOwners() string { return s.k.m2mOwners() }
