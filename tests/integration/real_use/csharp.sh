# A console project builds and runs (needs the SDK; NuGet access only for extra packages).
dotnet new console -o app --force > /dev/null
echo 'System.Console.WriteLine(6 * 7);' > app/Program.cs
dotnet run --project app | grep -x 42 >/dev/null
