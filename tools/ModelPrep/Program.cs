// Builds the model repository's ONNX files from packages fetched by restore.
//
// ResNet-18 (NuGet Microsoft.ML.DnnImageFeaturizer.ResNet18 0.23.1) ships as two graphs with the
// batch dimension fixed at 1: ResNetPreprocess.onnx (RGB planes -> BGR, minus a per-pixel mean
// image) and ResNet18.onnx (-> 512x1x1 pooled features). We join them into one graph, so the
// package's own preprocessing runs inside ONNX Runtime, and make the batch dimension dynamic.
//
// usage: Async.Serving.ModelPrep <model-repository-dir> [nuget-packages-dir]
using Google.Protobuf;
using Onnx;

var repository = args.Length > 0 ? args[0] : "models";
var packages = args.Length > 1
    ? args[1]
    : Environment.GetEnvironmentVariable("NUGET_PACKAGES")
      ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");

var source = Path.Combine(packages, "microsoft.ml.dnnimagefeaturizer.resnet18", "0.23.1", "tools", "DnnImageModels");
var target = Path.Combine(repository, "resnet18", "1", "model.onnx");
if (File.Exists(target))
{
    Console.WriteLine($"{target}: present");
    return 0;
}

if (!Directory.Exists(source))
{
    Console.Error.WriteLine($"{source} not found: restore tools/ModelPrep first (dotnet restore fetches the package).");
    return 1;
}

var prep = ModelProto.Parser.ParseFromFile(Path.Combine(source, "ResNetPrepOnnx", "ResNetPreprocess.onnx"));
var net = ModelProto.Parser.ParseFromFile(Path.Combine(source, "ResNet18Onnx", "ResNet18.onnx"));
var merged = ResNetMerge.Merge(prep, net);

Directory.CreateDirectory(Path.GetDirectoryName(target)!);
var temp = target + ".tmp";
using (var stream = File.Create(temp))
{
    merged.WriteTo(stream);
}

File.Move(temp, target, overwrite: true);
Console.WriteLine($"{target}: written ({new FileInfo(target).Length / 1024 / 1024} MiB, input 'image' [N,3,224,224] RGB 0-255, output 'features' [N,512,1,1])");
return 0;

internal static class ResNetMerge
{
    public const string InputName = "image";
    public const string OutputName = "features";

    public static ModelProto Merge(ModelProto prep, ModelProto net)
    {
        var prepGraph = prep.Graph;
        var netGraph = net.Graph;
        var prepIn = prepGraph.Input.Single().Name;
        var prepOut = prepGraph.Output.Single().Name;
        var netIn = netGraph.Input.Single().Name;
        var netOut = netGraph.Output.Single().Name;

        var graph = new GraphProto { Name = "resnet18_features" };
        foreach (var node in prepGraph.Node)
        {
            graph.Node.Add(Rename(node, prepIn, InputName));
        }

        foreach (var node in netGraph.Node)
        {
            graph.Node.Add(Rename(Rename(node, netIn, prepOut), netOut, OutputName));
        }

        graph.Initializer.Add(prepGraph.Initializer);
        graph.Initializer.Add(netGraph.Initializer);

        var input = prepGraph.Input.Single().Clone();
        input.Name = InputName;
        graph.Input.Add(input);

        var output = netGraph.Output.Single().Clone();
        output.Name = OutputName;
        graph.Output.Add(output);

        var model = net.Clone();
        model.Graph = graph;
        model.Graph.SetDim();
        return model;
    }

    private static NodeProto Rename(NodeProto node, string from, string to)
    {
        var copy = node.Clone();
        for (var i = 0; i < copy.Input.Count; i++)
        {
            if (copy.Input[i] == from)
            {
                copy.Input[i] = to;
            }
        }

        for (var i = 0; i < copy.Output.Count; i++)
        {
            if (copy.Output[i] == from)
            {
                copy.Output[i] = to;
            }
        }

        return copy;
    }
}
