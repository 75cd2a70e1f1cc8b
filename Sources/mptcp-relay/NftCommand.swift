import ArgumentParser
import RelayConfig

struct NftCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nft",
        abstract: "Print the nftables ruleset (and the ip rule/route lines) that a config's transparent and redirect listeners need.",
        discussion: "Load it with: mptcp-relay nft --config FILE | nft -f -   (the ip rule/route lines are printed as comments; --routes prints them as commands).")

    @OptionGroup var file: ConfigFileOption

    @Flag(help: "Print only the ip rule / ip route commands TPROXY needs, one per line.")
    var routes = false

    @Flag(help: "With --routes: print the commands that remove them instead.")
    var remove = false

    func validate() throws { _ = try file.required() }

    func run() throws {
        let loaded = try loadConfigOrExit(try file.required())
        if routes {
            let lines = remove ? NftRuleset.routingRemovalCommands(loaded) : NftRuleset.routingCommands(loaded)
            for l in lines { print(l) }
        } else {
            print(NftRuleset.render(loaded), terminator: "")
        }
    }
}
