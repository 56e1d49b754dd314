// A minimal Pulumi language host for Python programs and Python policy packs.
//
// Why this exists: the upstream host (module
// github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3) is not served by
// the Go module proxy we can reach, so e2e/bootstrap.sh builds this small replacement
// instead. It is our own code written against the public Go SDK
// (github.com/pulumi/pulumi/sdk/v3): the heavy lifting (virtualenv handling, package
// listing, the policy-pack configuration proxy, gRPC plumbing) lives in that SDK.
//
// It implements what `pulumi preview/up/destroy/refresh`, `pulumi about`,
// `pulumi install` and `--policy-pack` need: Handshake, GetRequiredPackages, Run,
// RunPlugin, InstallDependencies, GetProgramDependencies, About, GetPluginInfo and
// Cancel. Code generation RPCs (convert, import --generate-code, package gen-sdk) are
// not implemented. Programs are run with the `pulumi-language-python-exec` script that
// must sit next to this binary (bootstrap.sh copies it from the SDK module).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	sdk "github.com/pulumi/pulumi/sdk/v3"
	"github.com/pulumi/pulumi/sdk/v3/go/common/apitype"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/cmdutil"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/logging"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	"github.com/pulumi/pulumi/sdk/v3/go/common/version"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"github.com/pulumi/pulumi/sdk/v3/python/toolchain"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"
)

const (
	execScriptName = "pulumi-language-python-exec"
	// Exit code of the exec script after it already printed an actionable error.
	exitCodeUserError = 32
)

func main() {
	flag.String("tracing", "", "ignored (accepted for CLI compatibility)")
	showVersion := flag.Bool("version", false, "print the plugin version and exit")
	executor := flag.String("use-executor", "", "path of the exec script (default: next to this binary)")
	flag.Parse()
	if *showVersion {
		fmt.Println(version.Version)
		return
	}
	logging.InitLogging(false, 0, false)

	if *executor == "" {
		self, err := os.Executable()
		if err != nil {
			cmdutil.Exit(fmt.Errorf("could not determine own path: %w", err))
		}
		*executor = filepath.Join(filepath.Dir(self), execScriptName)
	}
	if _, err := os.Stat(*executor); err != nil {
		cmdutil.Exit(fmt.Errorf("missing executor %s: %w", *executor, err))
	}

	var engineAddress string
	if args := flag.Args(); len(args) > 0 {
		engineAddress = args[0]
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	cancelChannel := make(chan bool)
	go func() {
		<-ctx.Done()
		stop()
		close(cancelChannel)
	}()
	if engineAddress != "" {
		if err := rpcutil.Healthcheck(ctx, engineAddress, 5*time.Minute, stop); err != nil {
			cmdutil.Exit(fmt.Errorf("could not start health check: %w", err))
		}
	}

	runCtx, runCancel := context.WithCancel(context.Background())
	host := &languageHost{exec: *executor, engineAddress: engineAddress, cancelCtx: runCtx, cancel: runCancel}
	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Cancel: cancelChannel,
		Init: func(srv *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(srv, host)
			return nil
		},
		Options: rpcutil.TracingServerInterceptorOptions(nil),
	})
	if err != nil {
		cmdutil.Exit(fmt.Errorf("could not start language host RPC server: %w", err))
	}
	fmt.Printf("%d\n", handle.Port)
	if err := <-handle.Done; err != nil {
		cmdutil.Exit(fmt.Errorf("language host RPC stopped serving: %w", err))
	}
}

type languageHost struct {
	pulumirpc.UnimplementedLanguageRuntimeServer

	exec          string
	engineAddress string
	cancelCtx     context.Context
	cancel        context.CancelFunc
}

// pythonOptions turns the `runtime.options` of Pulumi.yaml / PulumiPolicy.yaml into toolchain options.
// resolve returns the program's Python options and the toolchain (pip, uv, poetry) they select.
func resolve(info *pulumirpc.ProgramInfo, isPlugin bool) (toolchain.PythonOptions, toolchain.Toolchain, error) {
	opts, err := pythonOptions(info, isPlugin)
	if err != nil {
		return opts, nil, err
	}
	tc, err := toolchain.ResolveToolchain(opts)
	return opts, tc, err
}

func pythonOptions(info *pulumirpc.ProgramInfo, isPlugin bool) (toolchain.PythonOptions, error) {
	opts := toolchain.PythonOptions{Root: info.GetRootDirectory(), ProgramDir: info.GetProgramDirectory()}
	var options map[string]any
	if info.GetOptions() != nil {
		options = info.GetOptions().AsMap()
	}
	str := func(key string) (string, error) {
		v, ok := options[key]
		if !ok {
			return "", nil
		}
		s, ok := v.(string)
		if !ok {
			return "", fmt.Errorf("runtime option %q must be a string", key)
		}
		return s, nil
	}
	venv, err := str("virtualenv")
	if err != nil {
		return opts, err
	}
	opts.Virtualenv = venv
	switch tc, err := str("toolchain"); {
	case err != nil:
		return opts, err
	case tc == "" || tc == "pip":
		opts.Toolchain = toolchain.Pip
	case tc == "poetry":
		opts.Toolchain = toolchain.Poetry
	case tc == "uv":
		opts.Toolchain = toolchain.Uv
	default:
		return opts, fmt.Errorf("unsupported toolchain %q", tc)
	}
	switch tc, err := str("typechecker"); {
	case err != nil:
		return opts, err
	case tc == "":
	case tc == "mypy":
		opts.Typechecker = toolchain.TypeCheckerMypy
	case tc == "pyright":
		opts.Typechecker = toolchain.TypeCheckerPyright
	default:
		return opts, fmt.Errorf("unsupported typechecker %q", tc)
	}
	if isPlugin && opts.Toolchain == toolchain.Pip && opts.Virtualenv == "" {
		opts.Virtualenv = "venv"
	}
	return opts, nil
}

func (h *languageHost) Handshake(
	ctx context.Context, req *pulumirpc.LanguageHandshakeRequest,
) (*pulumirpc.LanguageHandshakeResponse, error) {
	h.engineAddress = req.GetEngineAddress()
	return &pulumirpc.LanguageHandshakeResponse{}, nil
}

func (h *languageHost) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version.Version}, nil
}

func (h *languageHost) Cancel(context.Context, *emptypb.Empty) (*emptypb.Empty, error) {
	h.cancel()
	return &emptypb.Empty{}, nil
}

// findPluginJSONScript prints {distribution name: path of its pulumi-plugin.json or ""}.
const findPluginJSONScript = `
import importlib.metadata as md, importlib.util as iu, json, os, sys
out = {}
for name in sys.argv[1:]:
    path = ""
    try:
        mod = md.distribution(name).metadata["Name"].replace("-", "_")
        spec = iu.find_spec(mod)
        for loc in (spec.submodule_search_locations or []) if spec else []:
            cand = os.path.join(str(loc), "pulumi-plugin.json")
            if os.path.isfile(cand):
                path = cand
                break
    except Exception:
        pass
    out[name] = path
print(json.dumps(out))
`

var pep440 = regexp.MustCompile(`^(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:(a|b|rc)(\d+))?$`)

// pluginVersion maps a plain PEP 440 release version (1.2, 1.2.3, 1.2.3rc1) to semver.
func pluginVersion(v string) (string, bool) {
	m := pep440.FindStringSubmatch(v)
	if m == nil {
		return "", false
	}
	for i := 2; i <= 3; i++ {
		if m[i] == "" {
			m[i] = "0"
		}
	}
	out := fmt.Sprintf("v%s.%s.%s", m[1], m[2], m[3])
	if m[4] != "" {
		out += "-" + map[string]string{"a": "alpha", "b": "beta", "rc": "rc"}[m[4]] + "." + m[5]
	}
	return out, true
}

func (h *languageHost) GetRequiredPackages(
	ctx context.Context, req *pulumirpc.GetRequiredPackagesRequest,
) (*pulumirpc.GetRequiredPackagesResponse, error) {
	_, tc, err := resolve(req.GetInfo(), false)
	if err != nil {
		return nil, err
	}
	if err := tc.ValidateVenv(ctx); err != nil {
		return nil, err
	}
	pkgs, err := tc.ListPackages(ctx, true)
	if err != nil {
		return nil, err
	}
	names := []string{}
	for _, p := range pkgs {
		names = append(names, p.Name)
	}
	paths := map[string]string{}
	if len(names) > 0 {
		cmd, err := tc.Command(ctx, append([]string{"-c", findPluginJSONScript}, names...)...)
		if err != nil {
			return nil, err
		}
		out, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("listing pulumi-plugin.json files: %w", err)
		}
		if err := json.Unmarshal(out, &paths); err != nil {
			return nil, fmt.Errorf("parsing pulumi-plugin.json list: %w", err)
		}
	}

	result := []*pulumirpc.PackageDependency{}
	for _, p := range pkgs {
		if p.Name == "pulumi-policy" || p.Name == "pulumi-esc-sdk" {
			continue // known to have no plugin
		}
		var meta *plugin.PulumiPluginJSON
		if path := paths[p.Name]; path != "" {
			if meta, err = plugin.LoadPulumiPluginJSON(path); err != nil {
				return nil, fmt.Errorf("reading %s: %w", path, err)
			}
		}
		if meta == nil && !strings.HasPrefix(p.Name, "pulumi-") {
			continue
		}
		dep := &pulumirpc.PackageDependency{Kind: "resource"}
		if meta != nil {
			if !meta.Resource {
				continue
			}
			dep.Name, dep.Version, dep.Server = meta.Name, meta.Version, meta.Server
			if pp := meta.Parameterization; pp != nil {
				dep.Parameterization = &pulumirpc.PackageParameterization{
					Name: pp.Name, Version: pp.Version, Value: pp.Value,
				}
			}
			if pp := meta.ExtensionParameterization; pp != nil {
				dep.Extension = &pulumirpc.PackageParameterization{
					Name: pp.Name, Version: pp.Version, Value: pp.Value,
				}
			}
		}
		if dep.Name == "" {
			dep.Name = strings.TrimPrefix(p.Name, "pulumi-")
		}
		if dep.Version == "" {
			v, ok := pluginVersion(p.Version)
			if !ok {
				logging.V(5).Infof("skipping %s: cannot map version %q to a plugin version", p.Name, p.Version)
				continue
			}
			dep.Version = v
		}
		if !strings.HasPrefix(dep.Version, "v") {
			dep.Version = "v" + dep.Version
		}
		result = append(result, dep)
	}
	return &pulumirpc.GetRequiredPackagesResponse{Packages: result}, nil
}

func exitCode(err error) (int, bool) {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok {
			return ws.ExitStatus(), true
		}
	}
	return 0, false
}

func (h *languageHost) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	opts, tc, err := resolve(req.GetInfo(), false)
	if err != nil {
		return nil, err
	}
	if err := tc.ValidateVenv(ctx); err != nil {
		return nil, err
	}

	args := []string{h.exec}
	flagArg := func(k, v string) {
		if v != "" {
			args = append(args, "--"+k, v)
		}
	}
	flagArg("monitor", req.GetMonitorAddress())
	flagArg("engine", h.engineAddress)
	flagArg("project", req.GetProject())
	flagArg("root_directory", req.GetInfo().GetRootDirectory())
	flagArg("stack", req.GetStack())
	flagArg("pwd", req.GetPwd())
	flagArg("dry_run", strconv.FormatBool(req.GetDryRun()))
	flagArg("parallel", strconv.Itoa(int(req.GetParallel())))
	flagArg("organization", req.GetOrganization())
	args = append(args, req.GetInfo().GetEntryPoint())
	args = append(args, req.GetArgs()...)

	if opts.Typechecker != toolchain.TypeCheckerNone {
		checker := map[bool]string{true: "mypy", false: "pyright"}[opts.Typechecker == toolchain.TypeCheckerMypy]
		tcCmd, err := tc.ModuleCommand(ctx, checker, req.GetInfo().GetProgramDirectory())
		if err != nil {
			return nil, err
		}
		tcCmd.Dir = req.GetInfo().GetProgramDirectory()
		if out, err := tcCmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("%s failed: %w\n%s", checker, err, out)
		}
	}

	runCtx, runCancel := context.WithCancel(h.cancelCtx)
	defer runCancel()
	context.AfterFunc(ctx, runCancel)
	cmd, err := tc.Command(runCtx, args...)
	if err != nil {
		return nil, err
	}
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 5 * time.Second
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	env := cmd.Env
	if env == nil {
		env = os.Environ()
	}
	if cfg := req.GetConfig(); cfg != nil {
		b, err := json.Marshal(cfg)
		if err != nil {
			return nil, err
		}
		env = append(env, "PULUMI_CONFIG="+string(b))
	}
	secretKeys := req.GetConfigSecretKeys()
	if secretKeys == nil {
		secretKeys = []string{}
	}
	b, err := json.Marshal(secretKeys)
	if err != nil {
		return nil, err
	}
	cmd.Env = append(env, "PULUMI_CONFIG_SECRET_KEYS="+string(b))

	if err := cmd.Run(); err != nil {
		_ = os.Stdout.Sync()
		_ = os.Stderr.Sync()
		if code, ok := exitCode(err); ok {
			if code == exitCodeUserError {
				return &pulumirpc.RunResponse{Bail: true}, nil
			}
			return &pulumirpc.RunResponse{Error: fmt.Sprintf("program exited with non-zero exit code: %d", code)}, nil
		}
		return &pulumirpc.RunResponse{Error: fmt.Sprintf("could not run the python executor: %v", err)}, nil
	}
	return &pulumirpc.RunResponse{}, nil
}

func (h *languageHost) InstallDependencies(
	req *pulumirpc.InstallDependenciesRequest, server pulumirpc.LanguageRuntime_InstallDependenciesServer,
) error {
	opts, err := pythonOptions(req.GetInfo(), req.GetIsPlugin())
	if err != nil {
		return err
	}
	closer, stdout, stderr, err := rpcutil.MakeInstallDependenciesStreams(server, req.GetIsTerminal())
	if err != nil {
		return err
	}
	defer closer.Close()
	tc, err := toolchain.ResolveToolchain(opts)
	if err != nil {
		return err
	}
	if err := tc.InstallDependencies(server.Context(), req.GetInfo().GetProgramDirectory(),
		req.GetUseLanguageVersionTools(), true, stdout, stderr); err != nil {
		return err
	}
	return closer.Close()
}

func (h *languageHost) RuntimeOptionsPrompts(
	context.Context, *pulumirpc.RuntimeOptionsRequest,
) (*pulumirpc.RuntimeOptionsResponse, error) {
	return &pulumirpc.RuntimeOptionsResponse{}, nil
}

func (h *languageHost) About(ctx context.Context, req *pulumirpc.AboutRequest) (*pulumirpc.AboutResponse, error) {
	opts := toolchain.PythonOptions{Toolchain: toolchain.Pip}
	if req.GetInfo() != nil {
		var err error
		if opts, err = pythonOptions(req.GetInfo(), false); err != nil {
			return nil, err
		}
	}
	tc, err := toolchain.ResolveToolchain(opts)
	if err != nil {
		return nil, err
	}
	info, err := tc.About(ctx)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.AboutResponse{
		Executable: info.PythonExecutable,
		Version:    info.PythonVersion.String(),
		Metadata: map[string]string{
			"toolchain":        toolchain.Name(opts.Toolchain),
			"toolchainVersion": info.ToolchainVersion.String(),
		},
	}, nil
}

func (h *languageHost) GetProgramDependencies(
	ctx context.Context, req *pulumirpc.GetProgramDependenciesRequest,
) (*pulumirpc.GetProgramDependenciesResponse, error) {
	_, tc, err := resolve(req.GetInfo(), false)
	if err != nil {
		return nil, err
	}
	pkgs, err := tc.ListPackages(ctx, req.GetTransitiveDependencies())
	if err != nil {
		return nil, fmt.Errorf("listing python packages: %w", err)
	}
	deps := make([]*pulumirpc.DependencyInfo, 0, len(pkgs))
	for _, p := range pkgs {
		deps = append(deps, &pulumirpc.DependencyInfo{Name: p.Name, Version: p.Version})
	}
	return &pulumirpc.GetProgramDependenciesResponse{Dependencies: deps}, nil
}

// RunPlugin runs a Python policy pack (kind "analyzer": `python -u -m pulumi.policy ARGS DIR`)
// or a plain Python plugin directory (`python DIR ARGS`, i.e. its __main__.py).
func (h *languageHost) RunPlugin(
	req *pulumirpc.RunPluginRequest, server pulumirpc.LanguageRuntime_RunPluginServer,
) error {
	ctx := server.Context()
	isPolicy := req.GetKind() == string(apitype.AnalyzerPlugin)
	_, tc, err := resolve(req.GetInfo(), !isPolicy)
	if err != nil {
		return err
	}
	dir := req.GetInfo().GetProgramDirectory()
	var args []string
	if isPolicy {
		args = append(append([]string{"-u", "-m", "pulumi.policy"}, req.GetArgs()...), dir)
	} else {
		args = append([]string{dir}, req.GetArgs()...)
	}
	cmd, err := tc.Command(ctx, args...)
	if err != nil {
		return err
	}
	closer, stdout, stderr, err := rpcutil.MakeRunPluginStreams(server, false)
	if err != nil {
		return err
	}
	defer closer.Close()

	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	var proxy *sdk.PolicyProxy
	if isPolicy {
		// Policy packs run from their own directory and learn the stack config through
		// environment variables, which the SDK's proxy collects from the engine first.
		cmd.Dir = dir
		if proxy, stdout, err = sdk.NewPolicyProxy(ctx, stdout); err != nil {
			return fmt.Errorf("could not start policy pack proxy: %w", err)
		}
		cfg, err := proxy.AwaitConfiguration(ctx)
		if err != nil {
			return fmt.Errorf("could not get stack configuration: %w", err)
		}
		if cfg != nil {
			add := func(k, v string) {
				if v != "" {
					cmd.Env = append(cmd.Env, k+"="+v)
				}
			}
			add("PULUMI_ORGANIZATION", cfg.Organization)
			add("PULUMI_PROJECT", cfg.Project)
			add("PULUMI_STACK", cfg.Stack)
			add("PULUMI_DRY_RUN", strconv.FormatBool(cfg.DryRun))
			if cfg.Config != nil {
				b, err := json.Marshal(cfg.Config)
				if err != nil {
					return err
				}
				add("PULUMI_CONFIG", string(b))
			}
		}
	} else {
		cmd.Dir = req.GetPwd()
	}
	cmd.Env = append(cmd.Env, req.GetEnv()...)
	cmd.Stdout, cmd.Stderr = stdout, stderr

	if err := cmd.Start(); err != nil {
		return fmt.Errorf("could not start python plugin: %w", err)
	}
	if proxy != nil {
		err = proxy.Attach(ctx, cmd)
	} else {
		err = cmd.Wait()
	}
	if err != nil {
		if code, ok := exitCode(err); ok {
			return server.Send(&pulumirpc.RunPluginResponse{
				Output: &pulumirpc.RunPluginResponse_Exitcode{Exitcode: int32(code)}, //nolint:gosec
			})
		}
		return err
	}
	return closer.Close()
}
