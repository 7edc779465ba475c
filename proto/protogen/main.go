// Command protogen compiles the repository's .proto files and runs protoc-gen-go on them,
// without protoc: the parser is github.com/bufbuild/protocompile and the code generator is
// the protoc-gen-go pinned as a tool in go.mod, so `make generate` reproduces the committed
// code byte for byte on any machine with Go.
//
// Usage, from the module root:
//
//	go tool protogen            # every .proto under the current directory
//	go tool protogen a.proto    # only these (paths relative to the current directory)
//
// Imports are resolved relative to the module root (`import "actors/actorpb/actors.proto";`)
// and against the well-known types. Output is written next to each .proto
// (protoc-gen-go's paths=source_relative); set `option go_package` in every file.
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/bufbuild/protocompile"
	"github.com/bufbuild/protocompile/linker"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/pluginpb"
)

func main() {
	if err := run(context.Background(), os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "protogen:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	files := args
	if len(files) == 0 {
		var err error
		if files, err = findProtos("."); err != nil {
			return err
		}
	}
	if len(files) == 0 {
		return errors.New("no .proto files found")
	}
	for i, f := range files {
		files[i] = filepath.ToSlash(filepath.Clean(f))
	}

	compiler := protocompile.Compiler{
		Resolver:       protocompile.WithStandardImports(&protocompile.SourceResolver{ImportPaths: []string{"."}}),
		SourceInfoMode: protocompile.SourceInfoStandard,
	}
	compiled, err := compiler.Compile(ctx, files...)
	if err != nil {
		return fmt.Errorf("compile: %w", err)
	}

	req := &pluginpb.CodeGeneratorRequest{
		FileToGenerate: files,
		Parameter:      proto.String("paths=source_relative"),
		ProtoFile:      withDependencies(compiled),
	}
	resp, err := runPlugin(ctx, req)
	if err != nil {
		return err
	}
	for _, f := range resp.GetFile() {
		if err := os.WriteFile(filepath.FromSlash(f.GetName()), []byte(f.GetContent()), 0o644); err != nil {
			return fmt.Errorf("write generated file: %w", err)
		}
	}
	return nil
}

// findProtos lists .proto files below root, skipping hidden directories and testdata,
// sorted so that the generator's input order never depends on the file system.
func findProtos(root string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() && path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "vendor") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(name, ".proto") {
			out = append(out, path)
		}
		return nil
	})
	slices.Sort(out)
	return out, err
}

// withDependencies returns the descriptors of files and everything they import, each
// after its imports, as CodeGeneratorRequest requires.
func withDependencies(files linker.Files) []*descriptorpb.FileDescriptorProto {
	var out []*descriptorpb.FileDescriptorProto
	seen := map[string]bool{}
	var visit func(fd protoreflect.FileDescriptor)
	visit = func(fd protoreflect.FileDescriptor) {
		if seen[fd.Path()] {
			return
		}
		seen[fd.Path()] = true
		imports := fd.Imports()
		for i := range imports.Len() {
			visit(imports.Get(i).FileDescriptor)
		}
		if r, ok := fd.(linker.Result); ok {
			out = append(out, r.FileDescriptorProto())
			return
		}
		out = append(out, protodesc.ToFileDescriptorProto(fd))
	}
	for _, f := range files {
		visit(f)
	}
	return out
}

// runPlugin runs the protoc-gen-go pinned in go.mod with req on its standard input.
func runPlugin(ctx context.Context, req *pluginpb.CodeGeneratorRequest) (*pluginpb.CodeGeneratorResponse, error) {
	in, err := proto.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("marshal plugin request: %w", err)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "go", "tool", "protoc-gen-go")
	cmd.Stdin = bytes.NewReader(in)
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("protoc-gen-go: %w: %s", err, stderr.String())
	}
	resp := &pluginpb.CodeGeneratorResponse{}
	if err := proto.Unmarshal(stdout.Bytes(), resp); err != nil {
		return nil, fmt.Errorf("decode protoc-gen-go response: %w", err)
	}
	if resp.Error != nil {
		return nil, fmt.Errorf("protoc-gen-go: %s", resp.GetError())
	}
	return resp, nil
}
