/// The version of this build, as the Debian package carries it (scripts/version.sh).
/// `stampedVersion` is generated at build time by Plugins/VersionStamp.
public enum BuildVersion {
    public static let string: String = stampedVersion
}
