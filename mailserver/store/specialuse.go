package store

// StandardSpecialUse returns the RFC 6154 special-use attribute the store gives a folder of
// this name ("\Sent" for "Sent"), or "" for a folder without one. The attribute follows the
// name: it is what Folders reports, and it is not stored anywhere else.
func StandardSpecialUse(name string) string {
	return specialUse(CanonicalFolderName(name))
}
