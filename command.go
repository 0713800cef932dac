package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"text/tabwriter"
)

// A command is one gatehouse command, such as "serve" or "user add", in
// the manner of the Go tool's own (cmd/go/internal/base.Command): its
// usage line, its line in the command list, its own flags and what it
// does. Each command has the flags it uses and no others.
type command struct {
	// name is what follows "gatehouse": "serve", "user add".
	name string
	// args is the rest of the usage line: "NAME --out PREFIX [--days N]".
	args string
	// short is the command's line in the command list.
	short string
	// minArgs and maxArgs bound the positional arguments.
	minArgs, maxArgs int
	// setup registers the command's flags on fs, with variables of this
	// run only, and returns what runs the command once they are parsed.
	setup func(fs *flag.FlagSet) runFunc
}

// runFunc runs a command with its positional arguments.
type runFunc func(e *env, args []string) error

// commands is every command, in the order of the command list.
var commands = []*command{
	serveCmd, initCmd, healthCmd,
	userAddCmd, userListCmd, userPasswdCmd, userRolesCmd, userDisableCmd, userEnableCmd,
	userUnlockCmd, userPinCmd, userUnpinCmd,
	roleSetCmd, roleListCmd, roleDeleteCmd,
	certIssueCmd, certRevokeCmd, certListCmd,
	appSetCmd, appListCmd, appDeleteCmd,
	sessionListCmd, sessionEndCmd,
	oidcClientSetCmd, oidcClientListCmd, oidcClientDeleteCmd, oidcKeysRotateCmd,
	auditCmd,
}

// errUsage reports a command line that could not be understood. What is
// wrong, and the usage, have already been printed; main exits with
// status 2, as the Go tool does.
var errUsage = errors.New("invalid command line")

// dispatch runs the command that words (the arguments after "gatehouse")
// name.
func dispatch(e *env, words []string) error {
	if len(words) == 0 {
		fmt.Fprint(e.stderr, commandList(""))
		return errUsage
	}
	switch words[0] {
	case "help", "-h", "-help", "--help":
		return help(e, words[1:])
	}
	cmd, rest := lookup(words)
	if cmd != nil {
		return cmd.run(e, rest)
	}
	group := words[0]
	if !isGroup(group) {
		return unknownCommand(e, group, "")
	}
	if len(words) == 1 {
		fmt.Fprint(e.stderr, commandList(group))
		return errUsage
	}
	switch words[1] {
	case "-h", "-help", "--help":
		fmt.Fprint(e.stdout, commandList(group))
		return nil
	}
	return unknownCommand(e, group+" "+words[1], group)
}

// help is "gatehouse help [COMMAND]": the command list, a group's
// commands, or one command's usage and flags, on standard output.
func help(e *env, words []string) error {
	if len(words) == 0 || slices.Contains([]string{"-h", "-help", "--help"}, words[0]) {
		fmt.Fprint(e.stdout, commandList(""))
		return nil
	}
	cmd, rest := lookup(words)
	switch {
	case cmd != nil && len(rest) == 0:
		cmd.help(e.stdout)
		return nil
	case cmd == nil && len(words) == 1 && isGroup(words[0]):
		fmt.Fprint(e.stdout, commandList(words[0]))
		return nil
	}
	return unknownCommand(e, strings.Join(words, " "), "")
}

// lookup finds the command that words begin with ("user add alice"
// names "user add") and returns it with the words after its name.
func lookup(words []string) (*command, []string) {
	for n := min(2, len(words)); n > 0; n-- {
		name := strings.Join(words[:n], " ")
		for _, c := range commands {
			if c.name == name {
				return c, words[n:]
			}
		}
	}
	return nil, nil
}

// isGroup reports whether word begins the names of commands ("user").
func isGroup(word string) bool {
	return slices.ContainsFunc(commands, func(c *command) bool { return strings.HasPrefix(c.name, word+" ") })
}

func unknownCommand(e *env, name, group string) error {
	fmt.Fprintf(e.stderr, "gatehouse: unknown command %q\n\n%s", name, commandList(group))
	return fmt.Errorf("%w: unknown command %q", errUsage, name)
}

// commandList is the list of every command, or of a group's commands
// ("cert"), with a line on each.
func commandList(group string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "usage: gatehouse %s [ARGUMENTS] [flags]\n\ncommands:\n", strings.TrimSpace(group+" COMMAND"))
	tw := tabwriter.NewWriter(&b, 0, 4, 3, ' ', 0)
	for _, c := range commands {
		if group == "" || strings.HasPrefix(c.name, group+" ") {
			fmt.Fprintf(tw, "  %s\t%s\n", c.name, c.short)
		}
	}
	tw.Flush()
	b.WriteString("\nRun \"gatehouse help COMMAND\" (or \"gatehouse COMMAND -h\") for a command's arguments and flags.\n")
	return b.String()
}

// flagSet is a new, empty set of c's flags, and the function that runs c
// with them. The flag package prints nothing: run and help do.
func (c *command) flagSet() (*flag.FlagSet, runFunc) {
	fs := flag.NewFlagSet("gatehouse "+c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs, c.setup(fs)
}

// run parses args (flags may follow the positional arguments) and runs
// the command. -h or --help prints its help instead; a command line it
// cannot take is refused in plain words.
func (c *command) run(e *env, args []string) error {
	fs, run := c.flagSet()
	pos, err := parse(e, fs, args)
	var bad flagError
	switch {
	case errors.Is(err, flag.ErrHelp):
		c.help(e.stdout)
		return nil
	case errors.As(err, &bad):
		return c.refuse(e, c.explain(bad))
	case err != nil:
		return err
	case len(pos) < c.minArgs:
		return c.refuse(e, "too few arguments")
	case len(pos) > c.maxArgs:
		return c.refuse(e, fmt.Sprintf("too many arguments (%s)", strings.Join(pos[c.maxArgs:], " ")))
	}
	return run(e, pos)
}

// refuse reports a command line c cannot take: what is wrong, the usage
// line and where the flags are described.
func (c *command) refuse(e *env, msg string) error {
	fmt.Fprintf(e.stderr, "gatehouse %s: %s\n%s\nRun \"gatehouse help %s\" for its flags.\n", c.name, msg, c.usageLine(), c.name)
	return fmt.Errorf("%w: %s", errUsage, msg)
}

// flagError is a flag the flag package could not parse.
type flagError struct{ err error }

func (f flagError) Error() string { return f.err.Error() }

// flagName finds the flag package's way of naming a flag ("flag -out"
// or ": -out") in its messages.
var flagName = regexp.MustCompile(`(flag |: )-+([A-Za-z0-9_-]+)`)

// explain turns the flag package's message into plain words, naming
// flags as the help does (--out), and, for a flag c does not have, the
// commands that have it.
func (c *command) explain(bad flagError) string {
	msg := bad.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: "); ok {
		name = strings.TrimLeft(name, "-")
		var owners []string
		for _, other := range commands {
			fs, _ := other.flagSet()
			if fs.Lookup(name) != nil {
				owners = append(owners, other.name)
			}
		}
		msg = "unknown flag --" + name
		if len(owners) > 0 {
			msg += " (only " + andList(owners) + " take it)"
		}
		return msg
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: "); ok {
		return "--" + strings.TrimLeft(name, "-") + " needs a value"
	}
	return flagName.ReplaceAllString(msg, "$1--$2")
}

func (c *command) usageLine() string {
	return strings.TrimSpace("usage: gatehouse " + c.name + " " + c.args)
}

// help prints c's usage line, what it does, and its flags only, each
// with its default and, for a setting, its environment variable.
func (c *command) help(w io.Writer) {
	fs, _ := c.flagSet()
	fmt.Fprintf(w, "%s\n\n%s.\n", c.usageLine(), upperFirst(c.short))
	var own, shared []*flag.Flag
	fs.VisitAll(func(f *flag.Flag) {
		if isSetting(f.Name) {
			shared = append(shared, f)
		} else {
			own = append(own, f)
		}
	})
	if len(own) > 0 {
		fmt.Fprintf(w, "\nflags:\n")
		printFlags(w, own)
	}
	fmt.Fprintf(w, "\nsettings (every command has them):\n")
	printFlags(w, shared)
}

// printFlags prints flags as flag.PrintDefaults does, with two dashes.
func printFlags(w io.Writer, flags []*flag.Flag) {
	for _, f := range flags {
		kind, usage := flag.UnquoteUsage(f)
		fmt.Fprintf(w, "  --%s", f.Name)
		if kind != "" {
			fmt.Fprintf(w, " %s", strings.ToUpper(kind))
		}
		fmt.Fprintf(w, "\n    \t%s", strings.ReplaceAll(usage, "\n", "\n    \t"))
		var notes []string
		switch f.DefValue {
		case "", "0", "false":
		default:
			notes = append(notes, fmt.Sprintf("default %s", f.DefValue))
		}
		if slices.Contains(envFlags, f.Name) {
			notes = append(notes, "environment "+envName(f.Name))
		}
		if len(notes) > 0 {
			fmt.Fprintf(w, " (%s)", strings.Join(notes, "; "))
		}
		fmt.Fprintln(w)
	}
}

// andList joins words as prose does: "a", "a and b", "a, b and c".
func andList(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " and " + words[len(words)-1]
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// readSecret reads one line from r, without its line ending.
func readSecret(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read standard input: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("nothing was read from standard input")
	}
	return line, nil
}

func dedupe(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return slices.Compact(out)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// optionalBool is a boolean flag that remembers whether it was given, so
// "role set" changes only what the command line names.
type optionalBool struct{ set, value bool }

func (b *optionalBool) String() string { return fmt.Sprint(b.value) }
func (b *optionalBool) Set(v string) error {
	switch strings.ToLower(v) {
	case "true", "1", "yes":
		b.value = true
	case "false", "0", "no":
		b.value = false
	default:
		return fmt.Errorf("want true or false, got %q", v)
	}
	b.set = true
	return nil
}
func (b *optionalBool) IsBoolFlag() bool { return true }
